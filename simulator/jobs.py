"""A worker's active job: which service step comes next, and when.

The steps follow the order lifecycle (``assigned -> arrived -> started ->
completed``). :meth:`ActiveJob.next_delay` says how long until the next step
from where the job stands, and points the worker's :class:`~simulator.movement.Mover`
where it must drive for it:

- assigned: drive to the pickup; ``arrived`` on reaching it;
- arrived: ``started`` after the scenario's start delay (ringing the bell);
- started: with a drop-off, drive there, then hand over for the skill's
  service time; without, work on site for the service time; then ``completed``.

Pure: time and randomness come in as arguments. Imports ``protocol`` and
``simulator`` modules only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from protocol.messages import Job
from simulator.fleet import World, span
from simulator.movement import Grid, Mover, Node

Step = Literal["arrived", "started", "completed"]
NEXT_STEP: dict[str, Step] = {"assigned": "arrived", "arrived": "started", "started": "completed"}
# Service time for a skill the scenario does not describe.
_DEFAULT_SERVICE_S = (60.0, 300.0)


@dataclass(slots=True)
class ActiveJob:
    """The job a worker is doing; ``epoch`` invalidates steps planned before a re-plan."""

    order_id: str
    skill: str
    state: str
    pickup: Node
    dropoff: Node | None
    epoch: int = 0

    def next_delay(
        self, mover: Mover, world: World, rng: random.Random, speed: float, now: float
    ) -> float:
        """Seconds until the next step; starts the drive it needs."""
        skill = world.skill(self.skill)
        service = skill.service_s if skill is not None else _DEFAULT_SERVICE_S
        if self.state == "assigned":
            return mover.head_to(self.pickup, speed, now)
        if self.state == "arrived":
            return span(rng, world.config.workers.start_delay_s)
        drive = mover.head_to(self.dropoff, speed, now) if self.dropoff is not None else 0.0
        return drive + span(rng, service)

    def advance(self) -> Step:
        """Move to the next step and return it."""
        step = NEXT_STEP[self.state]
        self.state = step
        return step


def job_from(job: Job, grid: Grid) -> ActiveJob:
    """The active job for a ``Job`` the server sent (with an accept ack or a welcome)."""
    pickup = grid.node(job.pickup.lat, job.pickup.lng)
    dropoff = grid.node(job.dropoff.lat, job.dropoff.lng) if job.dropoff is not None else None
    return ActiveJob(job.order_id, job.skill, str(job.state), pickup, dropoff)
