"""Orders booked for later: when one starts looking for a worker, when its job
begins, whether it fits a worker's schedule, and whether a slot may be booked.
Pure: ``now`` comes in as an argument.

A booked order carries a slot (start, end). It is quoted at once and waits
``created`` until ``lead`` before the slot, when its dispatch begins like any
order's. A worker that accepts it holds it in its schedule, not yet among its
jobs: it stays free for other work. ``remind`` before the slot the job
*begins*: the worker is reminded and the job is one of its jobs from then on
(using its capacity); a worker away then (disconnected, offline or paused)
has it taken back and the order is dispatched again at once, urgently.

A booked order is offered only to a worker whose schedule it fits: no job of
the schedule may be nearer in time to the slot than the travel between the
two places (straight line at :data:`TRAVEL_KMH`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from protocol.messages import MAX_BOOK_AHEAD_S, MAX_SLOT_S, Point, Slot

from server.core.pricing import distance_km

TRAVEL_KMH = 25.0  # how fast a worker is taken to get from one booked job to the next


class Booked(NamedTuple):
    """A job in a worker's schedule: its slot (ms) and where it is."""

    start: int
    end: int
    at: Point


def dispatch_at(slot: Slot, lead_ms: int) -> int:
    """When a booked order starts looking for a worker."""
    return slot.start - lead_ms


def begins_at(slot: Slot, remind_ms: int) -> int:
    """When a booked job begins: its worker is reminded and it uses its capacity."""
    return slot.start - remind_ms


def travel_ms(a: Point, b: Point) -> int:
    """How long a worker takes from ``a`` to ``b``."""
    return round(distance_km(a, b) / TRAVEL_KMH * 3_600_000)


def fits(slot: Slot, at: Point, schedule: Iterable[Booked]) -> bool:
    """Whether a job at ``at`` in ``slot`` fits a worker's schedule: between it
    and each job held there is at least the travel from one to the other."""
    for job in schedule:
        gap = travel_ms(at, job.at)
        if slot.start < job.end + gap and job.start < slot.end + gap:
            return False
    return True


def slot_problem(slot: Slot, now_ms: int) -> str | None:
    """Why a slot cannot be booked now (for the customer), or None."""
    if slot.end <= slot.start:
        return "slot.end must be after slot.start"
    if slot.end - slot.start > MAX_SLOT_S * 1000:
        return f"a slot lasts at most {MAX_SLOT_S // 3600} hours"
    if slot.start <= now_ms:
        return "slot.start must be in the future (server clock)"
    if slot.start > now_ms + MAX_BOOK_AHEAD_S * 1000:
        return f"a slot starts at most {MAX_BOOK_AHEAD_S // 86400} days ahead"
    return None
