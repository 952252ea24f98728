"""Dispatch timing (``server/core/policy.py``): when the next search is, when an offer expires.

Pure functions, so plain synchronous tests.
"""

from __future__ import annotations

from server.core import policy

TIMING = policy.Timing(offer_timeout_ms=15_000, retry_interval_ms=5_000, max_dispatch_ms=120_000)


def test_next_search_far_from_deadline_waits_one_retry() -> None:
    """Far from the deadline, the next search is one retry interval from now."""
    assert policy.next_search(created_at_ms=1_000, now_ms=11_000, timing=TIMING) == 16_000


def test_next_search_is_capped_at_deadline() -> None:
    """Less than one retry before the deadline, the next search is at the deadline."""
    assert policy.next_search(created_at_ms=1_000, now_ms=119_000, timing=TIMING) == 121_000


def test_next_search_exactly_one_retry_before_deadline() -> None:
    """One retry interval before the deadline, the next search is the deadline itself."""
    assert policy.next_search(created_at_ms=0, now_ms=115_000, timing=TIMING) == 120_000


def test_next_search_gives_up_at_the_deadline() -> None:
    """At or after the deadline there is no next search: the order ends unassigned."""
    assert policy.next_search(created_at_ms=1_000, now_ms=121_000, timing=TIMING) is None
    assert policy.next_search(created_at_ms=1_000, now_ms=500_000, timing=TIMING) is None


def test_offer_expiry_adds_the_timeout() -> None:
    """An offer made now expires one offer timeout later."""
    assert policy.offer_expiry(now_ms=42_000, created_at_ms=40_000, timing=TIMING) == 57_000


def test_no_offer_outlives_the_order_deadline() -> None:
    """An offer made less than one timeout before the order's deadline expires at the deadline."""
    assert policy.offer_expiry(now_ms=110_000, created_at_ms=0, timing=TIMING) == 120_000
    assert policy.deadline(created_at_ms=5, timing=TIMING) == 120_005
