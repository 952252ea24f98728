"""Bodies of the operators' overrides (``PROTOCOL.md`` §19): reassign an
order, move its deadline, hold a worker back; a worker as operators see it;
the workers' payouts of a period; and the cities a deployment serves.

Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from protocol.ids import OrderIdText, SubjectId
from protocol.messages import EarningsTotal, Millis, PerformanceWindow, Text, WorkerState

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


class Waive(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/admin/workers/{city}/{id}/waive``: the worker's hand-back of
    ``order_id`` counts against it no more."""

    order_id: OrderIdText
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
    # its figures over the last 7 and 30 days, and when it last completed a job
    performance: list[PerformanceWindow] = []
    last_job_at: Millis | None = None


class Payout(Struct, frozen=True):
    """One worker's earnings in one currency over a payout period."""

    worker_id: str
    earnings: EarningsTotal


class Payouts(Struct, frozen=True):
    """``GET /v1/admin/payouts``: what each worker of ``city`` earned from the
    start of ``first_day`` to the end of ``last_day`` (UTC dates, ``YYYY-MM-DD``),
    by worker and currency."""

    city: str
    first_day: str
    last_day: str
    payouts: list[Payout] = []


class Cities(Struct, frozen=True):
    """``GET /v1/admin/cities``: the cities this deployment serves (its ``cities``
    setting), in the order the setting names them."""

    cities: list[str]
