"""Bodies of the operators' overrides (``PROTOCOL.md`` §19): reassign an
order, move its deadline, hold a worker back; and a worker as operators see it.

Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from protocol.ids import SubjectId
from protocol.messages import Millis, Text, WorkerState

MAX_EXTEND_S = 86_400  # one call moves a deadline by at most a day
MAX_PAUSE_S = 7 * 86_400  # a pause lasts at most a week (block for longer)


class Reassign(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/admin/orders/{id}/reassign``: why (recorded on the event)."""

    reason: Text | None = None


class Extend(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/admin/orders/{id}/extend``: move the deadline by ``by_s`` seconds."""

    by_s: Annotated[int, Meta(ge=1, le=MAX_EXTEND_S)]


class Pause(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/admin/workers/{city}/{id}/pause``: no offers for ``for_s`` seconds."""

    for_s: Annotated[int, Meta(ge=1, le=MAX_PAUSE_S)]
    reason: Text | None = None


class Block(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/admin/workers/{city}/{id}/block`` (and ``unblock``): for every
    customer, or only for ``customer``'s orders."""

    customer: SubjectId | None = None
    reason: Text | None = None


class WorkerStanding(Struct, frozen=True):
    """A worker as operators see it: its state, node and jobs (as its record has
    them; ``offline`` once the record expired), and what holds it back."""

    worker_id: str
    city: str
    state: WorkerState
    node: str | None = None
    jobs: list[str] = []
    paused_until: Millis | None = None
    blocked: bool = False
    blocked_for: list[str] = []
    # customers' ratings over the last 30 and 7 days: how many, and their mean
    # (null until there are the server's minimum number of them)
    ratings_30d: int = 0
    rating_30d: float | None = None
    ratings_7d: int = 0
    rating_7d: float | None = None
