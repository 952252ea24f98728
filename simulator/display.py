"""The live progress line: what the run is doing, once a second, on stderr.

Each simulator process produces a :class:`Progress` (cumulative counters and
current gauges); :func:`merge_progress` adds several up; :class:`Display`
turns successive ones into a line with rates. On a terminal the line is
redrawn in place; otherwise (a log file, CI) each update is its own line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TextIO

import msgspec
from msgspec import Struct

from simulator.stats import percentile

GROUPS = ("open", "assigned", "completed", "cancelled", "unassigned")
_MIN_RATE_WINDOW_S = 0.5


class Progress(Struct):
    """One process's state of the run (counters are cumulative)."""

    elapsed_s: float = 0.0
    total_s: float = 0.0
    phase: str = "starting"
    workers: int = 0
    connected: int = 0
    orders: dict[str, int] = msgspec.field(default_factory=dict)
    orders_created: int = 0
    location_reports: int = 0
    recent_tta_ms: list[float] = msgspec.field(default_factory=list)
    errors: int = 0
    lag_max_ms: float = 0.0
    cpu_s: float = 0.0


def merge_progress(parts: Iterable[Progress]) -> Progress:
    """Several processes' progress as one (times and lag are the maximum, the rest add up)."""
    total = Progress(orders=dict.fromkeys(GROUPS, 0))
    phases = set()
    for p in parts:
        total.elapsed_s = max(total.elapsed_s, p.elapsed_s)
        total.total_s = max(total.total_s, p.total_s)
        phases.add(p.phase)
        total.workers += p.workers
        total.connected += p.connected
        for group, n in p.orders.items():
            total.orders[group] = total.orders.get(group, 0) + n
        total.orders_created += p.orders_created
        total.location_reports += p.location_reports
        total.recent_tta_ms.extend(p.recent_tta_ms)
        total.errors += p.errors
        total.lag_max_ms = max(total.lag_max_ms, p.lag_max_ms)
        total.cpu_s += p.cpu_s
    total.phase = "/".join(sorted(phases)) or "starting"
    return total


def _ms(value: float) -> str:
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


class Display:
    """Writes progress lines to ``stream`` (normally stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last: Progress | None = None
        self._rates = (0.0, 0.0, 0.0)

    def line(self, p: Progress) -> str:
        """The text for ``p``, with rates over the time since the previous call (at least
        half a second: a final update right after a regular one keeps the last rates)."""
        last = self._last
        dt = p.elapsed_s - last.elapsed_s if last is not None else 0.0
        if last is None or dt >= _MIN_RATE_WINDOW_S:
            self._last = p
        if last is not None and dt >= _MIN_RATE_WINDOW_S:
            self._rates = (
                (p.orders_created - last.orders_created) / dt,
                (p.location_reports - last.location_reports) / dt,
                100 * (p.cpu_s - last.cpu_s) / dt,
            )
        order_rate, loc_rate, cpu = self._rates
        orders = " ".join(f"{g} {p.orders.get(g, 0)}" for g in GROUPS)
        tta = p.recent_tta_ms
        tta_text = f"p50 {_ms(percentile(tta, 50))} p99 {_ms(percentile(tta, 99))}" if tta else "-"
        width = len(str(math.ceil(p.total_s)))
        return (
            f"[{p.elapsed_s:{width + 2}.1f}/{p.total_s:.0f}s {p.phase}] "
            f"workers {p.connected}/{p.workers} | orders {orders} | {order_rate:.1f} ord/s"
            f" | loc {loc_rate:.0f}/s | assign {tta_text} | lag max {_ms(p.lag_max_ms)}"
            f" | cpu {cpu:.0f}% | errors {p.errors}"
        )

    def show(self, p: Progress) -> None:
        """Draw one update."""
        text = self.line(p)
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line so what follows starts on a fresh one."""
        if self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()
