"""Measuring and telling: percentiles, histograms, the report's shape, the order book,
the scheduler and the progress display. No server needed."""

from __future__ import annotations

import asyncio
import io
import random

import msgspec
import pytest

from protocol.messages import OfferMode, OrderState, OrderView, Point
from simulator.cli import exit_status
from simulator.display import Display, Progress, merge_progress
from simulator.orders import OrderBook
from simulator.report import Report, build_report
from simulator.scheduler import Scheduler
from simulator.stats import Histogram, Metrics, Snapshot, merge_snapshots, percentile

# ---------------------------------------------------------------- statistics and report


def test_percentile_uses_nearest_rank() -> None:
    """p50 of 1..10 is 5, p90 is 9, p100 is 10; an empty list gives 0."""
    values = [float(v) for v in range(10, 0, -1)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 0) == 1.0
    assert percentile([], 99) == 0.0


def test_histogram_percentiles_are_within_one_percent() -> None:
    """The bucketed percentiles match the exact ones to about 1 %."""
    rng = random.Random(11)
    values = [rng.lognormvariate(3, 1) for _ in range(20_000)]
    hist = Histogram()
    for v in values:
        hist.record(v)
    for q in (50, 95, 99):
        assert hist.percentile(q) == pytest.approx(percentile(values, q), rel=0.011)
    assert hist.max == max(values) and hist.count == len(values)


def test_histograms_merge_by_adding() -> None:
    """Two processes' snapshots add up counters, errors and samples."""
    a, b = Metrics(), Metrics()
    for m, value in ((a, 10.0), (b, 30.0)):
        m.count("offers_received", 2)
        m.error("offer_taken")
        m.record("offer_delivery_ms", value)
    merged = merge_snapshots([a.snapshot(), b.snapshot()])
    assert merged.counters["offers_received"] == 4 and merged.errors == {"offer_taken": 2}
    assert merged.histograms["offer_delivery_ms"].count == 2
    assert merged.histograms["offer_delivery_ms"].max == 30.0


def test_report_json_has_the_promised_shape() -> None:
    """The report encodes to JSON with every section and decodes back."""
    m = Metrics()
    m.count("orders_created", 4)
    m.count("offers_received", 4)
    m.count("offers_accepted", 3)
    m.record("time_to_assign_ms", 120.0)
    m.record("pickup_distance_m", 800.0)
    snap = msgspec.json.decode(msgspec.json.encode(m.snapshot()), type=Snapshot)
    report = build_report(
        snap,
        scenario="demo",
        seed=1,
        url="http://x",
        workers=5,
        procs=1,
        duration_s=10,
        elapsed_s=12,
    )
    doc = msgspec.json.decode(report.to_json())
    assert set(doc) == {
        "scenario", "seed", "url", "duration_s", "elapsed_s", "interrupted", "orders", "offers",
        "workers", "fleet", "latency_ms", "location", "errors", "simulator", "halted",
    }  # fmt: skip
    assert set(doc["latency_ms"]) >= {"time_to_assign", "created_to_offer", "offer_delivery"}
    assert set(doc["latency_ms"]["time_to_assign"]) == {"count", "mean", "p50", "p95", "p99", "max"}
    assert set(doc["simulator"]["lag_ms"]) == {"count", "mean", "p50", "p95", "p99", "max"}
    assert set(doc["simulator"]["phases"]) == {"ramp", "run", "grace", "closing"}
    assert doc["offers"]["answer_rate"] == 0.75
    assert doc["offers"]["mean_pickup_distance_m"] == pytest.approx(800.0, rel=0.01)
    assert msgspec.json.decode(report.to_json(), type=Report) == report


@pytest.mark.parametrize(
    ("counters", "status"),
    [
        ({"connects": 5, "orders_created": 3}, 0),
        ({"orders_create_failed": 3}, 1),
        ({"connects": 5, "orders_create_failed": 3}, 1),
        ({"connects": 5, "interrupted": 1}, 130),
        ({"connects": 5, "halted": 1}, 1),
    ],
)
def test_exit_status_says_whether_the_server_was_usable(
    counters: dict[str, int], status: int
) -> None:
    """0 for a run, 1 when nothing could connect or be ordered, 130 when interrupted."""
    report = build_report(
        Snapshot(counters=counters), scenario="x", seed=1, url="u", workers=5, procs=1,
        duration_s=1, elapsed_s=1,
    )  # fmt: skip
    assert exit_status(report) == status


def test_the_first_refused_city_calls_on_fatal_once() -> None:
    """``unknown_city`` ends the run (once, however many follow); other errors do not."""
    calls: list[str] = []
    m = Metrics(on_fatal=lambda: calls.append("stop"))
    m.error("offer_taken")
    assert calls == [] and m.fatal is None
    m.error("unknown_city")
    m.error("unknown_city")
    assert calls == ["stop"] and m.fatal == "unknown_city" and m.errors["unknown_city"] == 2


# ---------------------------------------------------------------- orders, scheduler, display


def _view(order_id: str, created_at: int = 1_000) -> OrderView:
    return OrderView(
        id=order_id, city="metro", skill="delivery", mode=OfferMode.SEQUENTIAL,
        state=OrderState.CREATED,
        customer="c", pickup=Point(lat=52.5, lng=13.4), created_at=created_at,
    )  # fmt: skip


def test_offer_arriving_before_the_post_answer_is_still_measured() -> None:
    """An offer that beats the POST's response is matched once the order id is known."""
    m = Metrics()
    book = OrderBook(m)
    book.offer_received("o1", received_ms=1_050.0)
    book.created(_view("o1"), customer=0, posted_ms=1_000.0)
    book.offer_received("o1", received_ms=1_500.0)  # a second offer does not count
    hist = m.histograms["created_to_offer_ms"]
    assert hist.count == 1 and hist.max == 50.0


def test_order_states_only_move_forward_and_event_times_win() -> None:
    """A late 'assigned' does not undo 'completed'; the event's time replaces the ack's."""
    m = Metrics()
    book = OrderBook(m)
    book.created(_view("o1", created_at=1_000), customer=0, posted_ms=990.0)
    book.assigned("o1", 1_400.0, exact=False)
    book.update("o1", "completed")
    book.assigned("o1", 1_300.0, exact=True)
    book.settle()
    assert book.orders["o1"].state == "completed"
    assert m.counters["orders_completed"] == 1 and m.counters["orders_ever_assigned"] == 1
    assert m.histograms["time_to_assign_ms"].max == 300.0


async def test_scheduler_runs_actions_in_time_order_and_measures_lag() -> None:
    """Actions run by due time, including ones added while it sleeps."""
    metrics = Metrics()
    scheduler = Scheduler(metrics)
    ran: list[str] = []
    done = asyncio.Event()
    now = scheduler.now()
    scheduler.call_at(now + 0.03, lambda: ran.append("c"))
    scheduler.call_at(now + 0.01, lambda: ran.append("a"))

    async def last() -> None:
        ran.append("d")
        done.set()

    scheduler.call_at(now + 0.04, last)
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0)
    scheduler.call_at(now + 0.02, lambda: ran.append("b"))
    await asyncio.wait_for(done.wait(), 1.0)
    scheduler.stop()
    await task
    assert ran == ["a", "b", "c", "d"]
    assert metrics.histograms["scheduler_lag_ms"].count == 4


async def test_a_failing_action_is_counted_and_the_loop_goes_on() -> None:
    """One broken action does not stop everyone else's."""
    metrics = Metrics()
    scheduler = Scheduler(metrics)
    done = asyncio.Event()

    def broken() -> None:
        raise ZeroDivisionError

    scheduler.call_later(0, broken)
    scheduler.call_later(0.01, done.set)
    task = asyncio.create_task(scheduler.run())
    await asyncio.wait_for(done.wait(), 1.0)
    scheduler.stop()
    await task
    assert metrics.errors["sim_internal"] == 1


def test_progress_merges_and_renders_rates() -> None:
    """Two processes' progress adds up, and the line shows rates between updates."""
    a = Progress(elapsed_s=1, total_s=30, phase="run", workers=5, connected=5, orders_created=2,
                 location_reports=10, orders={"open": 1}, cpu_s=0.25)  # fmt: skip
    b = Progress(elapsed_s=1, total_s=30, phase="run", workers=5, connected=4, orders_created=1,
                 location_reports=10, orders={"open": 2}, recent_tta_ms=[100.0])  # fmt: skip
    merged = merge_progress([a, b])
    assert (merged.workers, merged.connected, merged.orders["open"]) == (10, 9, 3)
    display = Display(io.StringIO())
    display.line(Progress(total_s=30, phase="run"))
    text = display.line(merged)
    assert "workers 9/10" in text and "3.0 ord/s" in text and "loc 20/s" in text
    assert "assign p50 100ms" in text and "cpu 25%" in text
