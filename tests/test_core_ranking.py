"""Candidate choice (``server/core/ranking.py``) and dispatch timing (``server/core/policy.py``).

Pure functions, so plain synchronous tests plus one hypothesis property.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.messages import OfferMode
from server.core import policy
from server.core.ranking import Candidate, choose

TIMING = policy.Timing(offer_timeout_ms=15_000, retry_interval_ms=5_000, max_dispatch_ms=120_000)


def _choose(
    candidates: list[Candidate], mode: OfferMode = OfferMode.SEQUENTIAL, size: int = 3
) -> list[str]:
    return [c.worker_id for c in choose(candidates, mode=mode, broadcast_size=size)]


def test_nearest_is_chosen_first() -> None:
    """The nearest candidate comes first, whatever the input order."""
    ring = [Candidate("far", 800.0), Candidate("near", 100.0), Candidate("mid", 400.0)]
    assert _choose(ring) == ["near"]
    assert _choose(ring, OfferMode.BROADCAST, 3) == ["near", "mid", "far"]


def test_sequential_offers_to_one() -> None:
    """Sequential mode returns exactly one candidate when several qualify."""
    ring = [Candidate(f"w{i}", 100.0 * i) for i in range(1, 6)]
    assert _choose(ring, OfferMode.SEQUENTIAL, size=4) == ["w1"]


def test_broadcast_offers_to_up_to_broadcast_size() -> None:
    """Broadcast mode returns the broadcast_size nearest, or everyone if fewer."""
    ring = [Candidate(f"w{i}", 100.0 * i) for i in range(1, 6)]
    assert _choose(ring, OfferMode.BROADCAST, size=3) == ["w1", "w2", "w3"]
    assert _choose(ring[:2], OfferMode.BROADCAST, size=3) == ["w1", "w2"]


def test_nobody_gives_an_empty_choice() -> None:
    """No candidates, no choice."""
    assert _choose([]) == []
    assert _choose([], OfferMode.BROADCAST) == []


@given(
    distances=st.lists(st.floats(0, 8000, allow_nan=False), max_size=30),
    mode=st.sampled_from(OfferMode),
    size=st.integers(1, 10),
)
def test_choice_is_the_nearest_few(distances: list[float], mode: OfferMode, size: int) -> None:
    """The choice is sorted by distance, bounded in size, the nearest of the candidates,
    and empty only when there are none."""
    candidates = [Candidate(f"w{i}", d) for i, d in enumerate(distances)]
    chosen = choose(candidates, mode=mode, broadcast_size=size)
    limit = 1 if mode is OfferMode.SEQUENTIAL else size
    got = [c.distance_m for c in chosen]
    assert got == sorted(distances)[:limit]
    assert len({c.worker_id for c in chosen}) == len(chosen)


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
