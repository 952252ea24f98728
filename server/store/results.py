"""What the store's operations return or take besides the script replies:
plain ``NamedTuple``s read by the services (a tick's search, an accept, a
worker as its socket opens, a workflow step and what it pays).

Imports only ``protocol`` and ``server.core`` besides the store's keys and
records; nothing above ``server/store/``.
"""

from __future__ import annotations

from typing import NamedTuple

from protocol.catalogue import Ranking
from protocol.messages import Job, OfferMode, Point, Slot
from server.core.ranking import Candidate
from server.store import records
from server.store.keys import OrderId


class Tick(NamedTuple):
    """What a claimed order needs: ``done``, ``wait`` or ``search`` (with the
    order's details, the time of the tick and the candidates, nearest first)."""

    action: str
    now: int = 0
    created_at: int = 0
    dv: str = ""
    skill: str = ""
    mode: OfferMode = OfferMode.SEQUENTIAL
    pickup: Point | None = None
    dropoff: Point | None = None
    note: str | None = None
    candidates: tuple[Candidate, ...] = ()
    policy: Policy | None = None  # what the order's category pinned
    pinned: records.Pinned | None = None
    step: str = ""  # action 'step': the pending step whose timer ran out
    ranking: Ranking | None = None  # the weights its category pinned, if it set any
    slot: Slot | None = None  # a booked order's slot
    urgent: bool = False  # taken back from a worker away when its booked job began


class WorkflowStep(NamedTuple):
    """What a workflow step does, as ``workflow.lua`` applies it: who (``by``,
    ``actor``), where the caller saw the order (``state``, ``pending``), the
    core event and the step recorded, and what comes next; ``frame`` is sent
    to the worker's app ('' for none); ``arrival_ms``, when the step makes the
    order ``arrived``, is the category's promise to time the arrival against
    (from the accept), for the worker's on-time figure; ``pay``, when the step
    completes an order with a price, what its worker earns."""

    by: str
    actor: str
    state: str
    pending: str
    event: str
    step: str
    reason: str
    next_pending: str
    timer_ms: int | None
    data: str
    cancel: bool
    frame: str
    arrival_ms: int | None = None
    pay: Pay | None = None


class Pay(NamedTuple):
    """What a step pays the order's worker: entries ``reason=amount,...`` in the
    minor units of ``currency`` (``server/core/earnings.py``); for a completed
    job, ``per_minute``, the rate of its time part, which the script works out
    from its own clock (the instant the history records the completion at)."""

    currency: str
    lines: str
    per_minute: int = 0


class Policy(NamedTuple):
    """The dispatch policy an order's category pinned on it."""

    offer_timeout_ms: int
    max_dispatch_ms: int
    broadcast_size: int


class Accepted(NamedTuple):
    """A successful accept: the worker's new state and the job's details."""

    now: int
    worker_state: str
    order_state: str
    created_at: int
    job: Job
    order: dict[str, str]  # the order's hash as the accept left it


class WorkerRecord(NamedTuple):
    """A worker as its socket opens: state, pending offer frame, jobs, until
    when an operator paused it, and its booked jobs not begun."""

    state: str
    offer_frame: str
    jobs: tuple[OrderId, ...]
    paused_until: int | None = None
    booked: tuple[OrderId, ...] = ()


# Where and when a worker was: (lng, lat, phone's time in ms). A plain tuple:
# one is made per location report, and a NamedTuple costs measurably more.
Spot = tuple[float, float, int]
