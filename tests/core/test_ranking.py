"""Candidate choice (``server/core/ranking.py``): nearness, performance and fairness.

Pure functions, so plain synchronous tests plus one hypothesis property.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.catalogue import Ranking
from protocol.messages import OfferMode
from server.core.ranking import DEFAULT, PRIOR, Candidate, Standing, choose, cost, is_late


def _choose(
    candidates: list[Candidate], mode: OfferMode = OfferMode.SEQUENTIAL, size: int = 3
) -> list[str]:
    return [c.worker_id for c in choose(candidates, mode=mode, broadcast_size=size).chosen]


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
    chosen = choose(candidates, mode=mode, broadcast_size=size).chosen
    limit = 1 if mode is OfferMode.SEQUENTIAL else size
    got = [c.distance_m for c in chosen]
    assert got == sorted(distances)[:limit]
    assert len({c.worker_id for c in chosen}) == len(chosen)


# ---------------------------------------------------------------- performance and fairness

MIN = 60_000
NOW = 100 * MIN
A = Candidate("A", 800.0, Standing(4.8, 0.95, 0.0, NOW - 10 * MIN, newcomer=False))
B = Candidate("B", 500.0, Standing(3.6, 0.6, 0.1, NOW - 50 * MIN, newcomer=False))
C = Candidate("C", 1200.0)  # a newcomer: no figures yet, no job in the days kept
D = Candidate("D", 300.0, Standing(4.9, 0.9, 0.25, NOW - 5 * MIN, newcomer=False))
EXAMPLE = [A, B, C, D]


def test_the_worked_example_costs() -> None:
    """PROTOCOL.md §10's example: each part of the cost as documented."""
    costs = {c.worker_id: round(cost(c, NOW), 4) for c in EXAMPLE}
    assert costs == {"A": 0.8167, "B": 1.0333, "C": 1.125, "D": 0.8833}


def test_a_better_record_outweighs_a_little_distance() -> None:
    """A, 300 m further than B but rated and answering better, is offered first."""
    got = choose([B, A, C], mode=OfferMode.SEQUENTIAL, broadcast_size=3, now_ms=NOW)
    assert [c.worker_id for c in got.chosen] == ["A"]


def test_an_unknown_figure_counts_as_a_typical_workers() -> None:
    """A figure below the minimum of samples costs what the prior's does."""
    known = Candidate("k", 1000.0, PRIOR._replace(newcomer=False, last_job_at=NOW))
    unknown = Candidate("u", 1000.0, Standing(last_job_at=NOW))
    assert cost(known, NOW) == cost(unknown, NOW)


def test_idle_time_counts_up_to_its_full_time() -> None:
    """Idle for the full time or longer, or with no job kept, is the same bonus."""
    rules = Ranking(idle=1.0, idle_full_s=600)
    busy = Candidate("b", 0.0, Standing(last_job_at=NOW))
    half = Candidate("h", 0.0, Standing(last_job_at=NOW - 5 * MIN))
    long_ago = Candidate("l", 0.0, Standing(last_job_at=NOW - 500 * MIN))
    never = Candidate("n", 0.0)
    assert [round(cost(c, NOW, rules) - cost(busy, NOW, rules), 3)
            for c in (half, long_ago, never)] == [-0.5, -1.0, -1.0]  # fmt: skip


def test_the_late_are_held_back_then_offered() -> None:
    """D cancels too often: passed over until the order has searched for late_by_s,
    and the choice says when; after that it is a candidate like any other."""
    early = choose(EXAMPLE, mode=OfferMode.SEQUENTIAL, broadcast_size=1, now_ms=NOW,
                   since_ms=NOW - 4_000)  # fmt: skip
    assert ([c.worker_id for c in early.chosen], early.later_at) == (["A"], NOW + 6_000)
    alone = choose([D], mode=OfferMode.SEQUENTIAL, broadcast_size=1, now_ms=NOW, since_ms=NOW)
    assert (alone.chosen, alone.later_at) == ([], NOW + 10_000)
    later = choose([D], mode=OfferMode.SEQUENTIAL, broadcast_size=1, now_ms=NOW + 10_000,
                   since_ms=NOW)  # fmt: skip
    assert ([c.worker_id for c in later.chosen], later.later_at) == (["D"], None)


def test_sequential_fairness_goes_to_a_near_equal_owed_work() -> None:
    """With luck below fair_share, the near-equal idle longest (B, within 0.3 of A)
    gets the offer; a newcomer among near-equals comes before it; otherwise the best."""
    base = {"mode": OfferMode.SEQUENTIAL, "broadcast_size": 1, "now_ms": NOW,
            "since_ms": NOW - 60_000}  # fmt: skip
    assert choose(EXAMPLE, luck=0.5, **base).chosen == [A]  # type: ignore[arg-type]
    assert choose(EXAMPLE, luck=0.1, **base).chosen == [B]  # type: ignore[arg-type]
    near_newcomer = C._replace(distance_m=800.0)
    got = choose([A, B, near_newcomer], luck=0.1, **base)  # type: ignore[arg-type]
    assert got.chosen == [near_newcomer]
    far = [A, B._replace(distance_m=5000.0)]
    assert choose(far, luck=0.1, **base).chosen == [A]  # type: ignore[arg-type]


def test_a_broadcast_gives_its_fair_share_of_places_to_newcomers() -> None:
    """Of 5 places, 1 (0.2 of them) goes to a newcomer even far down the ranking."""
    fleet = [Candidate(f"w{i}", 100.0 * i, Standing(5.0, 1.0, 0.0, NOW, newcomer=False))
             for i in range(1, 9)]  # fmt: skip
    newcomer = Candidate("new", 4000.0)
    got = choose([*fleet, newcomer], mode=OfferMode.BROADCAST, broadcast_size=5, now_ms=NOW)
    assert [c.worker_id for c in got.chosen] == ["w1", "w2", "w3", "w4", "new"]
    none_fair = Ranking(fair_share=0.0)
    got = choose([*fleet, newcomer], mode=OfferMode.BROADCAST, broadcast_size=5,
                 rules=none_fair, now_ms=NOW)  # fmt: skip
    assert "new" not in [c.worker_id for c in got.chosen]


def test_without_newcomers_the_fair_place_goes_to_the_longest_idle() -> None:
    """Nobody new: the fair place goes to whoever has waited longest since a job."""
    fleet = [Candidate(f"w{i}", 100.0 * i, Standing(5.0, 1.0, 0.0, NOW - i * MIN, False))
             for i in range(1, 6)]  # fmt: skip
    waited = Candidate("waited", 3000.0, Standing(5.0, 1.0, 0.0, NOW - 59 * MIN, False))
    got = choose([*fleet, waited], mode=OfferMode.BROADCAST, broadcast_size=3, now_ms=NOW)
    assert [c.worker_id for c in got.chosen] == ["w1", "w2", "waited"]


standings = st.builds(
    Standing,
    rating=st.none() | st.floats(1, 5), acceptance=st.none() | st.floats(0, 1),
    cancellation=st.none() | st.floats(0, 1),
    last_job_at=st.none() | st.integers(0, NOW), newcomer=st.booleans(),
)  # fmt: skip


@given(
    found=st.lists(st.tuples(st.floats(0, 8000, allow_nan=False), standings), max_size=20),
    mode=st.sampled_from(OfferMode), size=st.integers(1, 10), waited=st.integers(0, 20_000),
    luck=st.floats(0, 1, exclude_max=True),
)  # fmt: skip
def test_any_choice_is_bounded_and_holds_the_late_back(
    found: list[tuple[float, Standing]], mode: OfferMode, size: int, waited: int, luck: float
) -> None:
    """Whatever the figures: distinct candidates, at most the mode's number, none
    held back before its time, and empty only when nobody may be offered."""
    candidates = [Candidate(f"w{i}", d, s) for i, (d, s) in enumerate(found)]
    got = choose(candidates, mode=mode, broadcast_size=size, now_ms=NOW,
                 since_ms=NOW - waited, luck=luck)  # fmt: skip
    ids = [c.worker_id for c in got.chosen]
    assert len(set(ids)) == len(ids) <= (1 if mode is OfferMode.SEQUENTIAL else size)
    assert set(got.chosen) <= set(candidates)
    late = {c for c in candidates if is_late(c, DEFAULT)}
    if waited < 10_000:
        assert not late & set(got.chosen)
    may = set(candidates) - late if waited < 10_000 else set(candidates)
    assert bool(got.chosen) == bool(may)
