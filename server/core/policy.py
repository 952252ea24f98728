"""Timing policy of dispatch: when an offer expires, when a search retries,
when an order gives up. Pure: ``now`` always comes in as an argument."""

from __future__ import annotations

from typing import NamedTuple


class Timing(NamedTuple):
    """The dispatch timings, in milliseconds (from the settings)."""

    offer_timeout_ms: int
    retry_interval_ms: int
    max_dispatch_ms: int


def offer_expiry(now_ms: int, timing: Timing) -> int:
    """When an offer made now stops being acceptable."""
    return now_ms + timing.offer_timeout_ms


def next_search(created_at_ms: int, now_ms: int, timing: Timing) -> int | None:
    """When to search again after a search found nobody, or ``None`` when the
    order has been dispatching for too long and must end unassigned."""
    deadline = created_at_ms + timing.max_dispatch_ms
    if now_ms >= deadline:
        return None
    return min(now_ms + timing.retry_interval_ms, deadline)
