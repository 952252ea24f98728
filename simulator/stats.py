"""Counting and timing: a percentile helper, a mergeable histogram, the run's metrics.

:class:`Histogram` keeps counts in logarithmic buckets (about 1 % wide), so it
takes constant memory for millions of samples and two processes' histograms
add up exactly; :func:`percentile` works on a plain list where that is
simpler (a short recent window). :class:`Metrics` is everything one process
measures; its :meth:`Metrics.snapshot` is a plain struct that crosses process
boundaries as JSON and merges with :func:`merge_snapshots`.

Pure apart from reading the process's CPU time. Imports nothing from ``server``.
"""

from __future__ import annotations

import math
import resource
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import msgspec
from msgspec import Struct

# Errors that make the rest of a run pointless: the server refuses the run's city,
# so every worker and order would be refused alike. The run stops at the first.
FATAL_ERRORS = frozenset({"unknown_city"})

# Bucket k holds values v with floor(log1p(v) * _SCALE) == k: ~1 % relative width.
_SCALE = 100.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by the nearest-rank rule; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


class Summary(Struct, frozen=True):
    """The distribution of one measurement (milliseconds unless the name says otherwise)."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


class Histogram(Struct):
    """Counts of non-negative samples in ~1 %-wide logarithmic buckets; merges by adding."""

    buckets: dict[int, int] = msgspec.field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    max: float = 0.0

    def record(self, value: float) -> None:
        """Add one sample; negative values (clock rounding) count as zero."""
        value = max(0.0, value)
        key = int(math.log1p(value) * _SCALE)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        self.count += 1
        self.total += value
        self.max = max(self.max, value)

    def add(self, other: Histogram) -> None:
        """Add another histogram's samples to this one."""
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile by nearest rank, to within a bucket (never above ``max``)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return min(math.expm1((key + 0.5) / _SCALE), self.max)
        return self.max

    def summary(self) -> Summary:
        """Count, mean, p50/p95/p99 and max, rounded to 0.1."""
        mean = self.total / self.count if self.count else 0.0
        p50, p95, p99 = (round(self.percentile(q), 1) for q in (50, 95, 99))
        return Summary(self.count, round(mean, 1), p50, p95, p99, round(self.max, 1))


def process_cpu_s() -> float:
    """CPU time (user + system) this process has used, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Snapshot(Struct):
    """What one process measured, as plain data: counters, errors by code, histograms."""

    counters: dict[str, int] = msgspec.field(default_factory=dict)
    errors: dict[str, int] = msgspec.field(default_factory=dict)
    histograms: dict[str, Histogram] = msgspec.field(default_factory=dict)
    cpu_s: float = 0.0


class Metrics:
    """The live measurements of one simulator process.

    Counters are named by what happened (``offers_received``); errors are
    counted by their protocol code or a local one (``connect_failed``);
    histograms are named by what they time (``offer_delivery_ms``).
    """

    def __init__(self, on_fatal: Callable[[], None] | None = None) -> None:
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.histograms: dict[str, Histogram] = {}
        self.connected = 0
        self.on_fatal = on_fatal  # called at the first of the FATAL_ERRORS
        self.fatal: str | None = None

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        self.counters[name] += n

    def error(self, code: str) -> None:
        """Count one error with this code; the first fatal one calls ``on_fatal``."""
        self.errors[code] += 1
        if code in FATAL_ERRORS and self.fatal is None:
            self.fatal = code
            if self.on_fatal is not None:
                self.on_fatal()

    def record(self, name: str, value: float) -> None:
        """Add one sample to the histogram ``name``."""
        hist = self.histograms.get(name)
        if hist is None:
            hist = self.histograms[name] = Histogram()
        hist.record(value)

    def snapshot(self) -> Snapshot:
        """A copy of everything measured so far, including this process's CPU time."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        hists = {
            k: msgspec.structs.replace(h, buckets=dict(h.buckets))
            for k, h in self.histograms.items()
        }
        return Snapshot(
            dict(self.counters), dict(self.errors), hists, usage.ru_utime + usage.ru_stime
        )


def merge_snapshots(parts: Iterable[Snapshot]) -> Snapshot:
    """One snapshot adding up several processes' snapshots."""
    merged = Snapshot()
    counters: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for part in parts:
        counters.update(part.counters)
        errors.update(part.errors)
        merged.cpu_s += part.cpu_s
        for name, hist in part.histograms.items():
            merged.histograms.setdefault(name, Histogram()).add(hist)
    merged.counters, merged.errors = dict(counters), dict(errors)
    return merged
