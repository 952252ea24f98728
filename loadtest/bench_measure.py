"""What the benchmark's phases share: the plan, progress lines, percentiles, and
the measurement window (CPU and counters of the server, Redis and this load
generator at both ends; Redis command statistics, GC timings and a py-spy
profile in between).

CPU is a process's user+system time (psutil). Counts come from the server's
own ``/metrics``. Nothing here imports ``server``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loadtest import procs
from loadtest.bench_clients import BenchWorker, connect_fleet

Figures = dict[str, Any]


def say(text: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), rounded; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 3)


@dataclass(frozen=True)
class Plan:
    """How much load, for how long. ``quick`` scales it down to about a minute."""

    connections: int = 10_000
    location_rate: int = 25_000
    dispatch_workers: int = 10_000
    order_rate: int = 500
    report_every_s: float = 4.0
    idle_connections: int = 20_000
    cities: int = 10
    warmup_s: float = 3.0
    window_s: float = 15.0
    batch: int = 200
    workdir: Path = Path(".")
    redis_url: str = ""
    secret: str = ""
    server_env: dict[str, str] = field(default_factory=dict)
    profile: Path | None = None
    profile_phase: str = "ingest"
    profile_native: bool = False
    gc_stats: bool = False


@dataclass
class Reading:
    """A child's CPU time and a counter at one moment."""

    at: float
    cpu_s: float
    count: int
    metrics: dict[str, Any]


async def read(child: procs.HttpChild, count: Callable[[dict[str, Any]], int]) -> Reading:
    metrics = await child.metrics()
    return Reading(time.monotonic(), child.cpu_s(), count(metrics), metrics)


def cpu_of(child: procs.Child | None) -> float:
    """A child's CPU seconds; NaN for a Redis we did not start (not ours to measure)."""
    return child.cpu_s() if child is not None else float("nan")


def _cpu(*processes: psutil.Process) -> float:
    """User and system CPU seconds of ``processes``, together."""
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in processes)))


def _own_cpu() -> float:
    """This process's (the load generator's) user+system CPU seconds."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


class Window:
    """The measured stretch of a phase: server and Redis readings at both ends,
    Redis command statistics and (if asked) a py-spy profile in between."""

    def __init__(
        self, plan: Plan, phase: str, child: procs.HttpChild,
        redis: procs.RedisServer | None, count: Callable[[dict[str, Any]], int],
    ) -> None:  # fmt: skip
        self.plan, self.phase, self.child, self.redis, self.count = plan, phase, child, redis, count
        self.profiler: subprocess.Popen[bytes] | None = None
        self.shards: dict[int, list[psutil.Process]] = {}  # a cluster's shards' processes
        self.shards0: dict[int, float] = {}

    async def open(self) -> None:
        self.first, self.redis0 = await read(self.child, self.count), cpu_of(self.redis)
        self.client0 = _own_cpu()
        self.gc0 = gc_reading(self.plan, self.phase)
        if self.redis is not None:
            self.redis.command("CONFIG", "RESETSTAT")
        self.shards0 = {port: _cpu(*ps) for port, ps in self.shards.items()}
        self.profiler = start_profile(self.plan, self.phase, self.child.pid)

    async def close(self) -> Figures:
        """Per-second rate and CPU per unit counted, for the server and for Redis."""
        last, redis1 = await read(self.child, self.count), cpu_of(self.redis)
        first, units = self.first, max(last.count - self.first.count, 1)
        figures: Figures = {
            "counted": last.count - first.count,
            "per_s": round((last.count - first.count) / (last.at - first.at), 1),
            "cpu_us_per_unit": round((last.cpu_s - first.cpu_s) * 1e6 / units, 2),
            "server_cpu_util": round((last.cpu_s - first.cpu_s) / (last.at - first.at), 3),
            "client_cpu_util": round((_own_cpu() - self.client0) / (last.at - first.at), 3),
        }
        if self.redis is not None:
            figures["redis_cpu_us_per_unit"] = round((redis1 - self.redis0) * 1e6 / units, 2)
            figures["redis_commands"] = self.redis.commandstats()
        if self.shards:
            by_shard = {str(port): round((_cpu(*ps) - self.shards0[port]) * 1e6 / units, 2)
                        for port, ps in self.shards.items()}  # fmt: skip
            figures["redis_cpu_us_per_unit_by_shard"] = by_shard
            figures["redis_cpu_us_per_unit"] = round(sum(by_shard.values()), 2)
        if self.plan.gc_stats:
            figures["gc"] = gc_delta(self.gc0, gc_reading(self.plan, self.phase))
        if self.profiler is not None:
            await asyncio.to_thread(self.profiler.wait, 60)
        self.last = last
        return figures


def progress_every(total: int, label: str) -> Callable[[int], None]:
    step = max(total // 4, 1)

    def show(done: int) -> None:
        if done % step < 200 or done == total:
            say(f"{label}: {done}/{total} connected")

    return show


async def connect(
    plan: Plan, fleet: Sequence[BenchWorker], port: int, label: str, **kw: bool
) -> Figures:
    started = time.monotonic()
    failed = await connect_fleet(
        fleet, procs.HOST, port, plan.secret, batch=plan.batch,
        progress=progress_every(len(fleet), label), **kw,
    )  # fmt: skip
    seconds = time.monotonic() - started
    return {
        "connections": len(fleet) - failed,
        "connect_failures": failed,
        "connect_per_s": round((len(fleet) - failed) / seconds, 1),
    }


def start_profile(plan: Plan, phase: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy over the measurement window, if asked for this phase."""
    if plan.profile is None or plan.profile_phase != phase:
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    args = [
        str(py_spy), "record", "--pid", str(pid), "--duration", str(int(plan.window_s)),
        "--rate", "200", "--format", "raw", "-o", str(plan.profile),
        *(["--native"] if plan.profile_native else ["--nonblocking"]),  # native must pause
    ]  # fmt: skip
    say(f"profiling pid {pid} into {plan.profile}")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


GC_WATCH = Path(__file__).with_name("gcwatch")


def server_env(plan: Plan, phase: str) -> dict[str, str]:
    """The server's extra environment: the plan's, and the GC watch if asked for."""
    env = dict(plan.server_env)
    if plan.gc_stats:
        path = [str(GC_WATCH), env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        env["DISPATCH_BENCH_GC_FILE"] = str(plan.workdir / f"gc-{phase}.json")
    return env


def gc_reading(plan: Plan, phase: str) -> dict[str, dict[str, float]]:
    """The server's cumulative GC figures so far (empty without ``gc_stats``)."""
    path = plan.workdir / f"gc-{phase}.json"
    if not plan.gc_stats or not path.exists():
        return {}
    data: dict[str, dict[str, float]] = json.loads(path.read_text())
    return data


def gc_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Collections and their time within the window; ``max_ms`` is the server's lifetime max."""
    zero = {"count": 0.0, "total_ms": 0.0}
    return {
        gen: {
            "count": s["count"] - before.get(gen, zero)["count"],
            "total_ms": round(s["total_ms"] - before.get(gen, zero)["total_ms"], 1),
            "max_ms": round(s["max_ms"], 1),
        }
        for gen, s in after.items()
    }
