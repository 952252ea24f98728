"""A worker's active job: which step is pending, who does it, and when the
worker does its own.

A job walks the steps the server sent with it (its category's, or the
default ``arrived``, ``started``, ``completed`` of an order by bare skill);
the server names the pending one (``Job.step``) in every ack and
``job_updated``, so a step a condition skips is never done by mistake.
:meth:`ActiveJob.next_delay` says how long the worker takes for its pending
step, and points the worker's :class:`~simulator.movement.Mover` where it
must drive for it, by the step's place in the workflow:

- the first step: drive to the pickup, done on reaching it;
- the last step: with a drop-off, drive there, then hand over for the
  skill's service time; without, work on site for the service time;
- a step between: the scenario's start delay (ringing the bell).

A step by someone else (the customer's approval) waits for them:
:attr:`ActiveJob.waiting` is true, and the worker does nothing until the
server's ``job_updated`` names its next step. :func:`step_data` fills in what
a step requires (a photo URL, the customer's handover code).

Pure: time and randomness come in as arguments. Imports ``protocol`` and
``simulator`` modules only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from protocol.messages import Job, StepInfo
from simulator.fleet import World, span
from simulator.movement import Grid, Mover, Node

# The steps of an order by bare skill, as the server walks them.
DEFAULT_STEPS = (
    StepInfo(name="arrived", label="Arrived", by="worker"),
    StepInfo(name="started", label="Started", by="worker"),
    StepInfo(name="completed", label="Completed", by="worker"),
)
# The pending default step by the order's state, for a job that does not name it.
_BY_STATE = {"assigned": "arrived", "arrived": "started", "started": "completed"}
# Service time for a skill the scenario does not describe.
_DEFAULT_SERVICE_S = (60.0, 300.0)


@dataclass(slots=True)
class ActiveJob:
    """The job a worker is doing; ``epoch`` invalidates steps planned before a re-plan."""

    order_id: str
    skill: str
    pickup: Node
    dropoff: Node | None
    steps: tuple[StepInfo, ...] = DEFAULT_STEPS
    step: str | None = None  # the pending step (None once the job ended)
    category: str | None = None
    epoch: int = 0
    done: list[str] = field(default_factory=list)

    @property
    def pending(self) -> StepInfo | None:
        return next((s for s in self.steps if s.name == self.step), None)

    @property
    def waiting(self) -> bool:
        """Whether the pending step is someone else's (a customer's approval)."""
        pending = self.pending
        return pending is not None and pending.by != "worker"

    def next_delay(
        self, mover: Mover, world: World, rng: random.Random, speed: float, now: float
    ) -> float:
        """Seconds until the worker has done its pending step; starts the drive it needs."""
        skill = world.skill(self.skill)
        service = skill.service_s if skill is not None else _DEFAULT_SERVICE_S
        names = [s.name for s in self.steps]
        at = names.index(self.step) if self.step in names else 0
        if at == 0:
            return mover.head_to(self.pickup, speed, now)
        if at < len(names) - 1:
            return span(rng, world.config.workers.start_delay_s)
        drive = mover.head_to(self.dropoff, speed, now) if self.dropoff is not None else 0.0
        return drive + span(rng, service)

    def moved_on(self, job: Job | None) -> None:
        """The server's view after a step: the next pending step (None: ended)."""
        if self.step is not None:
            self.done.append(self.step)
        self.step = None if job is None else job.step


def step_data(step: StepInfo, order_id: str, code: str | None) -> dict[str, str | float]:
    """What a step requires, as a worker's app fills it in: a photo URL, the
    customer's code (when this process knows it), a number, some text."""
    data: dict[str, str | float] = {}
    for f in step.requires:
        if f.type == "url":
            data[f.name] = f"https://photos.sim.example/{order_id}/{step.name}.jpg"
        elif f.type == "code":
            if code is not None:
                data[f.name] = code
        elif f.type == "number":
            data[f.name] = 1.0
        else:
            data[f.name] = "done"
    return data


def job_from(job: Job, grid: Grid) -> ActiveJob:
    """The active job for a ``Job`` the server sent (with an accept ack or a welcome)."""
    pickup = grid.node(job.pickup.lat, job.pickup.lng)
    dropoff = grid.node(job.dropoff.lat, job.dropoff.lng) if job.dropoff is not None else None
    steps = tuple(job.steps) if job.steps else DEFAULT_STEPS
    pending = job.step or _BY_STATE.get(str(job.state), steps[0].name)
    return ActiveJob(job.order_id, job.skill, pickup, dropoff, steps, pending, job.category)
