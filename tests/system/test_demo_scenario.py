"""End to end: the demo scenario, shortened, against a real server and Redis.

Fifty simulated workers and a few customers go through the whole protocol:
connect, report locations, get offers, accept, drive, report every step;
customers create, follow live and cancel orders. Takes about twelve seconds.
"""

from __future__ import annotations

from simulator import load_scenario, simulate, with_overrides
from simulator.report import Report
from tests.support import SECRET, UNIT, ServerProcess

# Errors that a busy dispatch legitimately answers with.
BENIGN = {"offer_taken", "offer_expired", "order_cancelled"}


async def _demo(server: ServerProcess, city: str) -> Report:
    config = with_overrides(
        load_scenario("demo"),
        {
            "url": server.url,
            "secret": SECRET,
            "city": city,
            "duration_s": 5.0,
            "grace_s": 6.0 * UNIT,
            "orders.rate_per_s": 2.0,
        },
    )
    return await simulate(config)


async def test_demo_runs_orders_to_completion(server: ServerProcess, city: str) -> None:
    """Every worker connects; orders are created, offered, assigned and completed quickly;
    nothing breaks and the simulator keeps its schedule."""
    report = await _demo(server, city)
    assert not report.interrupted
    assert report.workers.connects == 50 and report.workers.reconnects == 0
    orders = report.orders
    assert orders.created >= 3 and orders.create_failed == 0
    assert orders.assigned >= orders.created - orders.cancelled - orders.unassigned
    assert orders.completed >= 1
    assert report.offers.received >= orders.assigned
    assert set(report.errors) <= BENIGN, report.errors
    assert report.location.reports > 0
    latency = report.latency_ms
    assert latency.time_to_assign.count == orders.assigned
    assert latency.created_to_offer.count >= orders.assigned
    assert latency.created_to_offer.p50 < 1000 * UNIT
    assert latency.offer_delivery.p99 < 1000 * UNIT
    assert report.simulator.lag_ms.p99 < 100 * UNIT
