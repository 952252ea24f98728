"""The simulated fleet's kinds of worker and the report's fleet section: pure
parts (quotas, the Gini coefficient, the section from counters, scenario
checks), then a short run of the ranking scenario against a real server."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from simulator import load_scenario, simulate, with_overrides
from simulator.city import default_city
from simulator.fleet import build_fleet, quotas
from simulator.fleet_report import fleet_report, gini
from simulator.movement import Grid
from simulator.scenario import Behaviour, ScenarioError, parse_scenario
from tests.support import SECRET, UNIT, ServerProcess


def test_gini_is_zero_for_equal_shares_and_grows_with_concentration() -> None:
    """No spread is 0, one of four earning everything is 0.75, 1..4 is 0.25."""
    assert gini([]) == 0.0 and gini([0, 0]) == 0.0 and gini([5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 8]) == 0.75
    assert gini([1, 2, 3, 4]) == 0.25


def test_behaviours_are_given_out_by_their_shares() -> None:
    """40 workers at 0.5/0.2/0.15/0.15 are 20/8/6/6 exactly, in a reproducible order;
    odd counts go by the largest remainders."""
    shares = {"reliable": Behaviour(share=0.5), "slow": Behaviour(share=0.2),
              "picky": Behaviour(share=0.15), "flaky": Behaviour(share=0.15)}  # fmt: skip
    kinds = quotas(shares, 40, random.Random(1))
    assert Counter(kinds) == {"reliable": 20, "slow": 8, "picky": 6, "flaky": 6}
    assert kinds == quotas(shares, 40, random.Random(1)) != sorted(kinds)
    assert Counter(quotas(shares, 3, random.Random(1))) == {"reliable": 2, "slow": 1}


def test_the_fleet_has_its_kinds_and_late_joiners() -> None:
    """The ranking scenario's fleet: kinds by quota, a fifth joining late."""
    config = load_scenario("ranking")
    city = default_city()
    fleet = build_fleet(config, 0, 40, "c", city, Grid(city.bbox, city.projection, 100.0))
    assert Counter(p.behaviour for p in fleet) == {"reliable": 20, "slow": 8, "picky": 6,
                                                   "flaky": 6}  # fmt: skip
    assert sum(p.late for p in fleet) == 8


def test_the_fleet_section_sums_each_kind_and_the_late() -> None:
    """Counters of two reliable workers (one late) and a flaky one become their groups."""
    counters = {
        "wk.a.kind.reliable": 1, "wk.a.offers": 10, "wk.a.accepted": 9, "wk.a.jobs": 9,
        "wk.a.busy_ms": 600, "wk.a.present_ms": 1000, "wk.a.earned": 900,
        "wk.b.kind.reliable": 1, "wk.b.late": 1, "wk.b.offers": 2, "wk.b.accepted": 2,
        "wk.b.jobs": 1, "wk.b.busy_ms": 100, "wk.b.present_ms": 1000, "wk.b.earned": 100,
        "wk.c.kind.flaky": 1, "wk.c.offers": 4, "wk.c.accepted": 4, "wk.c.handed_back": 2,
        "wk.c.jobs": 2, "wk.c.earned": 0, "payouts_read": 1, "orders_created": 12,
    }  # fmt: skip
    report = fleet_report(counters)
    reliable, flaky = report.by_behaviour["reliable"], report.by_behaviour["flaky"]
    assert (reliable.workers, reliable.jobs, reliable.acceptance) == (2, 10, round(11 / 12, 3))
    assert (reliable.jobs_per_worker, reliable.earned_per_worker, reliable.utilisation) == (
        5.0, 500.0, 0.35)  # fmt: skip
    assert (flaky.handed_back, flaky.utilisation) == (2, 0.0)
    assert (report.late_joiners.workers, report.late_joiners.jobs) == (1, 1)
    assert (report.earned_total, report.earnings_read) == (1000, True)
    assert report.earnings_gini == gini([900, 100, 0])


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [({"stars": [4, 6]}, "`stars`: need 1 <= min <= max <= 5"),
     ({"shar": 1}, "workers.behaviours.odd.shar: unknown key"),
     ({"hand_back_share": 2}, "workers.behaviours.odd.hand_back_share")],
)  # fmt: skip
def test_a_bad_behaviour_is_named(behaviour: dict[str, object], message: str) -> None:
    """A behaviour's mistakes name it, like a skill's."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"workers": {"behaviours": {"odd": behaviour}}}, "t.toml")
    assert message in str(info.value)


def test_a_fleet_of_no_behaviour_is_refused() -> None:
    """At least one behaviour must have a share."""
    with pytest.raises(ScenarioError, match="give at least one behaviour"):
        parse_scenario({"workers": {"behaviours": {"idle": {"share": 0}}}}, "t.toml")


async def test_a_short_ranking_run_reports_its_fleet(server: ServerProcess, city: str) -> None:
    """The ranking scenario, shortened, against a real server: its category is put
    in place, every kind works, flaky workers hand jobs back, customers rate and
    tip, and the earnings read from the server's payouts add up."""
    config = with_overrides(load_scenario("ranking"), {
        "url": server.url, "secret": SECRET, "city": city, "duration_s": 6.0,
        "grace_s": 6.0 * UNIT, "orders.rate_per_s": 3.0, "workers.count": 20,
        "workers.late_join_s": 2.0,
    })  # fmt: skip
    report = await simulate(config)
    fleet, workers = report.fleet, report.workers
    assert set(fleet.by_behaviour) == {"reliable", "slow", "picky", "flaky"}
    assert [g.workers for g in fleet.by_behaviour.values()] == [3, 3, 10, 4]  # by name
    assert fleet.late_joiners.workers == 4
    assert report.orders.completed > 0 and workers.ratings_given > 0
    assert sum(g.jobs for g in fleet.by_behaviour.values()) == workers.steps["delivered"]
    assert fleet.earnings_read and fleet.earned_total > 0
    per_worker = sum(g.earned_per_worker * g.workers for g in fleet.by_behaviour.values())
    assert abs(per_worker - fleet.earned_total) < 1
    assert set(report.errors) <= {"offer_taken", "offer_expired"}, report.errors
