"""Candidate choice (``server/core/ranking.py``) and dispatch timing (``server/core/policy.py``).

Pure functions, so plain synchronous tests plus one hypothesis property.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.messages import OfferMode
from server.core import policy
from server.core.ranking import Candidate, choose

STEPS_M = (1000.0, 2000.0, 3000.0, 5000.0)
TIMING = policy.Timing(offer_timeout_ms=15_000, retry_interval_ms=5_000, max_dispatch_ms=120_000)


def _choose(
    candidates: list[Candidate], mode: OfferMode = OfferMode.SEQUENTIAL, size: int = 3
) -> list[str]:
    chosen = choose(candidates, radius_steps_m=STEPS_M, mode=mode, broadcast_size=size)
    return [c.worker_id for c in chosen]


def test_nearest_is_chosen_first() -> None:
    """Within a ring, the nearest candidate comes first, whatever the input order."""
    ring = [Candidate("far", 800.0), Candidate("near", 100.0), Candidate("mid", 400.0)]
    assert _choose(ring) == ["near"]
    assert _choose(ring, OfferMode.BROADCAST, 3) == ["near", "mid", "far"]


def test_sequential_offers_to_one() -> None:
    """Sequential mode returns exactly one candidate when several qualify."""
    ring = [Candidate(f"w{i}", 100.0 * i) for i in range(1, 6)]
    assert _choose(ring, OfferMode.SEQUENTIAL, size=4) == ["w1"]


def test_broadcast_offers_to_up_to_broadcast_size() -> None:
    """Broadcast mode returns the broadcast_size nearest, or everyone in the ring if fewer."""
    ring = [Candidate(f"w{i}", 100.0 * i) for i in range(1, 6)]
    assert _choose(ring, OfferMode.BROADCAST, size=3) == ["w1", "w2", "w3"]
    assert _choose(ring[:2], OfferMode.BROADCAST, size=3) == ["w1", "w2"]


def test_candidate_in_first_ring_beats_nothing() -> None:
    """A lone candidate at 900 m is chosen from the 1 km ring."""
    assert _choose([Candidate("w", 900.0)]) == ["w"]


def test_nearer_ring_is_exhausted_first() -> None:
    """In broadcast mode, one candidate within 1 km is offered alone, not with ones at 1.5 km."""
    cands = [Candidate("a", 1500.0), Candidate("b", 900.0), Candidate("c", 1400.0)]
    assert _choose(cands, OfferMode.BROADCAST, size=3) == ["b"]


def test_next_ring_when_first_is_empty() -> None:
    """Candidates at 1.5 km are chosen when nobody is within 1 km."""
    cands = [Candidate("a", 1500.0), Candidate("c", 1400.0), Candidate("d", 2500.0)]
    assert _choose(cands, OfferMode.BROADCAST, size=3) == ["c", "a"]


def test_ring_edge_is_inside() -> None:
    """A candidate exactly on a radius step belongs to that ring."""
    assert _choose([Candidate("edge", 1000.0), Candidate("out", 1000.5)], OfferMode.BROADCAST) == [
        "edge"
    ]


def test_nobody_within_last_step_gives_empty() -> None:
    """Candidates all beyond the widest radius, or no candidates, give an empty choice."""
    assert _choose([Candidate("a", 5000.1), Candidate("b", 9000.0)], OfferMode.BROADCAST) == []
    assert _choose([]) == []


@given(
    distances=st.lists(st.floats(0, 8000, allow_nan=False), max_size=30),
    steps=st.lists(st.floats(1, 6000, allow_nan=False), min_size=1, max_size=5, unique=True).map(
        sorted
    ),
    mode=st.sampled_from(OfferMode),
    size=st.integers(1, 10),
)
def test_choice_is_nearest_of_the_smallest_occupied_ring(
    distances: list[float], steps: list[float], mode: OfferMode, size: int
) -> None:
    """The choice is sorted by distance, bounded in size, and the nearest of the smallest ring
    holding anyone; it is empty only when nobody is within the widest step."""
    candidates = [Candidate(f"w{i}", d) for i, d in enumerate(distances)]
    chosen = choose(candidates, radius_steps_m=steps, mode=mode, broadcast_size=size)
    limit = 1 if mode is OfferMode.SEQUENTIAL else size
    got = [c.distance_m for c in chosen]
    occupied = [r for r in steps if any(d <= r for d in distances)]
    if not occupied:
        assert chosen == []
        return
    ring = sorted(d for d in distances if d <= occupied[0])
    assert got == sorted(got)
    assert 1 <= len(chosen) <= limit
    assert got == ring[:limit]
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
    assert policy.offer_expiry(now_ms=42_000, timing=TIMING) == 57_000
