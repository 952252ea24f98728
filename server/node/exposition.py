"""The node's figures for Prometheus (``GET /metrics``, text format 0.0.4).

Hot paths keep plain integers in :class:`~server.services.figures.Figures`,
and :class:`RuntimeCollector` reads them, with the node's other counters and
gauges, when Prometheus scrapes; the histograms there are
prometheus_client's own. It reads a node through :class:`Observed`, the few
parts of the runtime it needs, so that it imports nothing above the loops.

Each node exports its own figures; sum them across nodes in Prometheus. Times
that span steps (order → first offer, created → assigned) are differences of
the one clock (Redis time), so they hold whichever node made each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from server.loops.ingest import LocationIngest
from server.loops.supervisor import Supervisor
from server.services.figures import OFFER_OUTCOMES, Figures
from server.services.hub import Hub
from server.store.redis_store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Observed(Protocol):
    """What the exposition reads of a node (:class:`~server.node.runtime.Runtime` is one)."""

    @property
    def node(self) -> str: ...
    @property
    def figures(self) -> Figures: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def ingest(self) -> LocationIngest: ...
    @property
    def store(self) -> Store: ...
    @property
    def supervisor(self) -> Supervisor: ...
    @property
    def stats(self) -> Counter[str]: ...
    def problems(self) -> list[str]: ...


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

    def __init__(self, rt: Observed) -> None:
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


def exposition(rt: Observed) -> bytes:
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


async def write_forever(rt: Observed, directory: str) -> None:
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


def fleet_exposition(rt: Observed, directory: str) -> bytes:
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
