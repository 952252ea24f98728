"""What the node counts on its hot paths, and its histograms.

Hot paths keep plain integers (a frame costs one dict increment, not a
labelled metric's lock): :class:`Figures` holds them, with the histograms
(order → first offer, created → assigned, Redis round trips, event-loop lag)
that are prometheus_client's own, observed a few times per order. The
exposition that reads them when Prometheus scrapes is
``server/node/exposition.py``.

Imports nothing of the server: the dispatcher, the workflows, the endpoints
and the loops count here.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics

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
