"""The node's figures for Prometheus (``GET /metrics``, text format 0.0.4).

Hot paths keep plain integers (a frame costs one dict increment, not a
labelled metric's lock), and :class:`RuntimeCollector` reads them, with the
node's other counters and gauges, when Prometheus scrapes. The histograms
(order → first offer, created → assigned, Redis round trips, event-loop lag)
are prometheus_client's own, observed a few times per order.

Each node exports its own figures; sum them across nodes in Prometheus. Times
that span steps (order → first offer, created → assigned) are differences of
the one clock (Redis time), so they hold whichever node made each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from server.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# No "<histogram>_created" series: they double the families for a restart time.
disable_created_metrics()  # type: ignore[no-untyped-call]

ORDER_OUTCOMES = ("created", "assigned", "completed", "cancelled", "unassigned")
OFFER_OUTCOMES = ("sent", "accepted", "rejected", "expired", "withdrawn")

LOOP_LAG_PROBE_S = 0.25

_SECONDS_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SECONDS_SLOW = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_SECONDS_REDIS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                  0.5, 1.0, 2.5)  # fmt: skip


class Figures:
    """What the node counts as it goes, and its histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.frames_in: Counter[str] = Counter()  # worker frames by type
        self.frames_out: Counter[str] = Counter()  # worker frames by type
        self.orders: Counter[tuple[str, ...]] = Counter()  # (city, outcome)
        self.offers: Counter[str] = Counter()  # outcome, as the worker's node saw it
        self.order_to_offer = Histogram(
            "dispatch_order_to_first_offer_seconds",
            "From an order's creation to its first offer being made (Redis time).",
            buckets=_SECONDS_FAST, registry=self.registry,
        )  # fmt: skip
        self.created_to_assigned = Histogram(
            "dispatch_order_created_to_assigned_seconds",
            "From an order's creation to a worker's accept (Redis time).",
            buckets=_SECONDS_SLOW, registry=self.registry,
        )  # fmt: skip
        self.redis_call = Histogram(
            "dispatch_redis_call_seconds",
            "Round trip of one write of commands to Redis and their replies.",
            buckets=_SECONDS_REDIS, registry=self.registry,
        )  # fmt: skip
        self.loop_lags_ms: deque[float] = deque(maxlen=1200)  # the last five minutes
        self.loop_lag = Histogram(
            "dispatch_event_loop_lag_seconds",
            f"How late a {LOOP_LAG_PROBE_S:g} s sleep on the event loop wakes up.",
            buckets=_SECONDS_FAST, registry=self.registry,
        )  # fmt: skip

    def order(self, city: str, outcome: str) -> None:
        self.orders[(city, outcome)] += 1

    async def watch_loop_lag(self) -> None:
        """Measure the event loop's lag for ever (a supervised loop)."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LOOP_LAG_PROBE_S)
            lag = max(0.0, loop.time() - start - LOOP_LAG_PROBE_S)
            self.loop_lag.observe(lag)
            self.loop_lags_ms.append(lag * 1000)

    def loop_lag_ms(self) -> dict[str, float]:
        """The event loop's lag over the last probes: p50, p99 and max, in ms."""
        lags = self.loop_lags_ms
        return {"p50": round(percentile(lags, 50), 2), "p99": round(percentile(lags, 99), 2),
                "max": round(max(lags, default=0.0), 2)}  # fmt: skip


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, nearest rank; 0 when empty."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _counter(name: str, doc: str, labels: list[str], rows: dict[tuple[str, ...], float]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, count in sorted(rows.items()):
        family.add_metric(list(values), count)
    return family


def _gauge(name: str, doc: str, labels: list[str], rows: dict[tuple[str, ...], float]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in sorted(rows.items()):
        family.add_metric(list(values), value)
    return family


class RuntimeCollector(Collector):
    """Reads the node's counters when Prometheus scrapes."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        rt, figures = self.rt, self.rt.figures
        yield _gauge("dispatch_node_info", "This node (value 1).", ["node"], {(rt.node,): 1})
        yield _gauge(
            "dispatch_connections", "Open WebSocket connections by kind.", ["kind"],
            {("worker",): len(rt.hub.workers),
             ("live",): sum(len(group) for group in rt.hub.watchers.values())},
        )  # fmt: skip
        cities: Counter[str] = Counter(link.city for link in rt.hub.workers.values())
        yield _gauge(
            "dispatch_workers_connected", "Worker sockets on this node, by city (supply).",
            ["city"], {(city,): n for city, n in cities.items()},
        )  # fmt: skip
        yield _counter(
            "dispatch_frames_received", "Worker frames received, by type.", ["type"],
            {(t,): n for t, n in figures.frames_in.items()},
        )  # fmt: skip
        yield _counter(
            "dispatch_frames_sent", "Frames sent to workers, by type.", ["type"],
            {(t,): n for t, n in figures.frames_out.items()},
        )  # fmt: skip
        ingest = rt.ingest
        yield _counter(
            "dispatch_location_reports", "Location reports taken, written to Redis, dropped.",
            ["result"], {("taken",): ingest.reports, ("written",): ingest.written,
                         ("dropped",): ingest.dropped},
        )  # fmt: skip
        yield _counter(
            "dispatch_orders", "Order steps made on this node, by city and outcome.",
            ["city", "outcome"], dict(figures.orders),
        )  # fmt: skip
        yield _counter(
            "dispatch_offers", "Offers as the worker's node saw them: sent to a socket, "
            "accepted, rejected, expired, withdrawn (taken by another, cancelled, lost).",
            ["outcome"], {(o,): figures.offers[o] for o in OFFER_OUTCOMES},
        )  # fmt: skip
        link = rt.store.link
        yield _counter(
            "dispatch_redis_errors", "Redis calls that failed, by kind.", ["kind"],
            {(kind,): n for kind, n in link.errors.items()},
        )  # fmt: skip
        yield _counter("dispatch_redis_timeouts", "Redis connections dropped for giving no "
                       "reply within redis_timeout_ms.", [], {(): link.timeouts})  # fmt: skip
        yield _counter("dispatch_redis_connects", "Connections made to Redis.", [],
                       {(): link.connects})  # fmt: skip
        yield _counter("dispatch_pubsub_reconnects", "Pub/sub connections made again.", [],
                       {(): rt.hub.subscriber.reconnects})  # fmt: skip
        yield _counter("dispatch_pubsub_bad_messages", "Pub/sub messages skipped as "
                       "malformed.", [], {(): rt.hub.bad_messages})  # fmt: skip
        yield _counter(
            "dispatch_loop_restarts", "Background loops restarted after failing, by loop.",
            ["loop"], {(name,): n for name, n in rt.supervisor.restarts.items()},
        )  # fmt: skip
        yield _counter(
            "dispatch_closed_sockets", "Sockets closed for a slow reader or a flood.", ["reason"],
            {("slow_reader",): rt.stats["slow_readers_closed"],
             ("flood",): rt.stats["floods_closed"]},
        )  # fmt: skip
        yield _gauge("dispatch_ready", "1 while /readyz answers 200.", [],
                     {(): 0 if rt.problems() else 1})  # fmt: skip


def exposition(rt: Runtime) -> bytes:
    """The node's figures in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(rt))
    return generate_latest(registry) + generate_latest(rt.figures.registry)


# --------------------------------------------------------------- many processes
#
# The nodes of one ``dispatch serve --workers N`` share a port, so a scrape
# reaches one of them. Each writes its figures to ``metrics_dir`` every
# second, and the one scraped answers for all: its own figures now, the
# others' as last written (if fresher than FILE_STALE_S), each sample labelled
# with its node.

FILE_EVERY_S = 1.0
FILE_STALE_S = 5.0


def _file(directory: str, node: str) -> Path:
    return Path(directory) / f"{node}.prom"


async def write_forever(rt: Runtime, directory: str) -> None:
    """Write this node's figures for the others to answer with (a supervised loop)."""
    target = _file(directory, rt.node)
    part = target.with_suffix(".part")
    try:
        while True:
            part.write_bytes(exposition(rt))
            part.replace(target)
            await asyncio.sleep(FILE_EVERY_S)
    finally:
        with contextlib.suppress(OSError):
            target.unlink()


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def fleet_exposition(rt: Runtime, directory: str) -> bytes:
    """Every live node's figures of the fleet, each sample labelled with its node."""
    texts = {rt.node: exposition(rt).decode()}
    for path in Path(directory).glob("*.prom"):
        with contextlib.suppress(OSError):
            if path.stem != rt.node and time.time() - path.stat().st_mtime < FILE_STALE_S:
                texts[path.stem] = path.read_text()
    merged: dict[str, Metric] = {}
    for node, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            into = merged.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            for sample in family.samples:
                into.add_sample(sample.name, {"node": node, **sample.labels}, sample.value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))
    return generate_latest(registry)
