"""Timing policy of dispatch: when an offer expires, when a search retries,
when an order gives up. Pure: ``now`` always comes in as an argument.

Every time here is on the one clock of the system, Redis ``TIME`` (the store
reads it inside each script and hands it back), never a node's or a phone's.
"""

from __future__ import annotations

from typing import NamedTuple


class Timing(NamedTuple):
    """The dispatch timings, in milliseconds (from the settings)."""

    offer_timeout_ms: int
    retry_interval_ms: int
    max_dispatch_ms: int


def deadline(created_at_ms: int, timing: Timing) -> int:
    """When an order nobody took ends ``unassigned``: a hard limit, offers included."""
    return created_at_ms + timing.max_dispatch_ms


def offer_expiry(now_ms: int, created_at_ms: int, timing: Timing) -> int:
    """When an offer made now stops being acceptable: after the offer timeout,
    but never after the order's deadline."""
    return min(now_ms + timing.offer_timeout_ms, deadline(created_at_ms, timing))


def next_search(created_at_ms: int, now_ms: int, timing: Timing) -> int | None:
    """When to search again after a search found nobody, or ``None`` when the
    order has reached its deadline and must end unassigned."""
    end = deadline(created_at_ms, timing)
    if now_ms >= end:
        return None
    return min(now_ms + timing.retry_interval_ms, end)
