"""``dispatch bench``: how fast the server is on this machine, against its targets.

One run measures, with the same client load for the bare and the real server:

========================  ==============================================  =====================
figure                    how                                             target
========================  ==============================================  =====================
bare CPU per message      bare websockets server, msgspec decode, count   (the floor)
uvicorn CPU per message   raw ASGI app on uvicorn, decode, count          (figure only)
ingest reports/s          10k workers sending 25,000 locations/s          ≥ 25,000/s
ingest CPU per report     server CPU / reports, over the bare figure      ≤ 1.5 x bare
ingest lag p99            ``/metrics`` receipt → Redis write              ≤ 100 ms
dispatch latency          POST → offer at the worker, 500 orders/s        p50 ≤ 3, p99 ≤ 10 ms
dispatch, 2 processes     the same on ``dispatch serve --workers 2``      (figure only)
dispatch, cluster         the same, 2 processes on a 3-master cluster     (figure only)
idle memory               server RSS delta / 20k hello'd connections      ≤ 35 KiB each
busy-city search          Redis time of one tick, 10k workers, 90% busy   p99 ≤ 1 ms
memory per 1,000 orders   Redis used_memory, orders ending, retention     flat after retention
========================  ==============================================  =====================

The ``uvicorn`` phase runs a raw ASGI app with the server's uvicorn settings
that decodes and counts like the bare server: its figure over bare is what
uvicorn's ASGI WebSocket layer adds, the server's over it what the server's
own work adds. Those two ratios are printed as figures, not targets.

``--quick`` scales the load down (about a minute); its figures are for
spotting regressions, the targets hold at the full load. Progress goes to
stderr, the table to stdout, every figure to ``--out`` (JSON).

Run: ``python -m loadtest.bench [--quick] [--out bench-results.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import uvloop

from loadtest import bench_phases as phases
from loadtest import procs
from loadtest.bench_measure import Figures, Plan, say

QUICK = {
    "connections": 2_000, "dispatch_workers": 2_000, "order_rate": 200,
    "idle_connections": 5_000, "cities": 4, "warmup_s": 2.0, "window_s": 6.0,
}  # fmt: skip
PHASES = ("bare", "uvicorn", "ingest", "dispatch", "dispatch2", "cluster", "idle", "busy",
          "memory")  # fmt: skip
SIZES = ("connections", "location_rate", "dispatch_workers", "order_rate", "idle_connections",
         "cities", "window_s")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's options, for ``dispatch bench`` and ``python -m loadtest.bench``."""
    parser.add_argument("--quick", action="store_true", help="scaled-down load, about a minute")
    parser.add_argument(
        "--out", default="bench-results.json", help="JSON file for every figure (%(default)s)"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument("--connections", type=int, help="ingest connections (10,000)")
    parser.add_argument("--location-rate", type=int, help="location reports/s (25,000)")
    parser.add_argument("--dispatch-workers", type=int, help="workers for dispatch (10,000)")
    parser.add_argument("--order-rate", type=int, help="orders/s (500)")
    parser.add_argument("--idle-connections", type=int, help="idle connections (20,000)")
    parser.add_argument("--cities", type=int, help="cities the dispatch fleet is spread over")
    parser.add_argument("--window", type=float, dest="window_s", help="seconds measured")
    parser.add_argument("--redis-url", help="use this Redis instead of a private one")
    parser.add_argument("--workdir", help="keep server logs and Redis files here (else a temp dir)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for dispatch serve (repeatable)")  # fmt: skip
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the server here")
    parser.add_argument("--profile-phase", choices=("ingest", "dispatch"), default="ingest")
    parser.add_argument("--profile-native", action="store_true", help="py-spy --native")
    parser.add_argument(
        "--gc-stats", action="store_true", help="time the server's collections (loadtest/gcwatch)"
    )


def plan_from(args: argparse.Namespace, workdir: Path, redis_url: str) -> Plan:
    sizes: dict[str, Any] = dict(QUICK) if args.quick else {}
    sizes.update({k: getattr(args, k) for k in SIZES if getattr(args, k) is not None})
    env = dict(item.split("=", 1) for item in args.server_env)
    return Plan(
        **sizes, workdir=workdir, redis_url=redis_url, secret=secrets.token_urlsafe(32),
        server_env=env, profile=args.profile, profile_phase=args.profile_phase,
        profile_native=args.profile_native, gc_stats=args.gc_stats,
    )  # fmt: skip


async def measure(
    plan: Plan, wanted: list[str], redis: procs.RedisServer | None
) -> dict[str, Figures]:
    """Run the wanted phases in order; a phase that fails is reported, not fatal."""
    steps: dict[str, Callable[[], Awaitable[Figures]]] = {
        "bare": lambda: phases.floor_phase(plan, "bare"),
        "uvicorn": lambda: phases.floor_phase(plan, "uvicorn"),
        "ingest": lambda: phases.ingest_phase(plan, redis),
        "dispatch": lambda: phases.dispatch_phase(plan, redis),
        "dispatch2": lambda: phases.dispatch_phase(plan, redis, processes=2),
        "cluster": lambda: phases.cluster_phase(plan, processes=2),
        "idle": lambda: phases.idle_phase(plan),
        "busy": lambda: phases.busy_phase(plan),
        "memory": lambda: phases.memory_phase(plan, redis),
    }
    results: dict[str, Figures] = {}
    for name in (p for p in PHASES if p in wanted):
        try:
            results[name] = await steps[name]()
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
            say(f"{name}: failed: {exc!r}")
            log = plan.workdir / f"{name}-server.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            results[name] = {"error": repr(exc), "server_log_tail": tail}
    return results


def capped(plan: Plan, fd_limit: int) -> tuple[Plan, list[str]]:
    """The plan with connection counts that fit the open-file limit (server and
    client each hold one descriptor per connection, plus Redis and a margin)."""
    room = fd_limit - 1024
    notes, changes = [], {}
    for name in ("connections", "dispatch_workers", "idle_connections"):
        if getattr(plan, name) > room:
            changes[name] = room
            notes.append(f"{name} capped at {room}: open-file limit {fd_limit}")
    return Plan(**{**plan.__dict__, **changes}), notes


def targets(r: dict[str, Figures]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    bare, ingest = r.get("bare", {}), r.get("ingest", {})
    dispatch, idle, busy = r.get("dispatch", {}), r.get("idle", {}), r.get("busy", {})
    memory = r.get("memory", {})
    ratio = _ratio(ingest, bare)
    rows = [  # (name, value, op, limit, unit); reports/s allows 2% for window timing
        ("ingest reports/s, kept up", _kept_up_rate(ingest), ">=", 25_000 * 0.98, "/s"),
        ("ingest CPU per report / bare", ratio, "<=", 1.5, "x"),
        ("ingest lag p99", ingest.get("lag_p99_ms"), "<=", 100.0, "ms"),
        ("dispatch p50", dispatch.get("dispatch_p50_ms"), "<=", 3.0, "ms"),
        ("dispatch p99", dispatch.get("dispatch_p99_ms"), "<=", 10.0, "ms"),
        ("idle RSS per connection", idle.get("rss_per_conn_kib"), "<=", 35.0, "KiB"),
        ("busy-city search p99 in Redis", busy.get("tick_redis_p99_us"), "<=", 1000.0, "µs"),
        (
            "memory growth after retention",
            memory.get("growth_after_2_retentions_pct"),
            "<=",
            15.0,
            "%",
        ),
    ]
    out = []
    for name, value, op, limit, unit in rows:
        met = None if value is None else (value >= limit if op == ">=" else value <= limit)
        out.append({"target": name, "value": value, "op": op, "limit": limit, "unit": unit,
                    "met": met})  # fmt: skip
    return out


def _ratio(over: Figures, under: Figures) -> float | None:
    """``over``'s CPU per message over ``under``'s (None unless both were measured)."""
    a, b = over.get("cpu_us_per_message"), under.get("cpu_us_per_message")
    return round(a / b, 2) if a and b else None


def ratios(r: dict[str, Figures]) -> list[dict[str, Any]]:
    """CPU-per-message ratios that split the server's cost over the floors:
    informational figures, not targets."""
    bare, floor, ingest = r.get("bare", {}), r.get("uvicorn", {}), r.get("ingest", {})
    return [
        {"ratio": "uvicorn ASGI floor / bare", "value": _ratio(floor, bare)},
        {"ratio": "server / uvicorn floor", "value": _ratio(ingest, floor)},
    ]


TOPOLOGIES = (("dispatch", "one process, one Redis"), ("dispatch2", "--workers 2, one Redis"),
              ("dispatch2-cluster", "--workers 2, 3-master cluster"))  # fmt: skip


def topologies(r: dict[str, Figures]) -> list[dict[str, Any]]:
    """One line per topology measured: orders/s offered, latency, CPU per order."""
    out = []
    for phase, label in TOPOLOGIES:
        f = r.get("cluster" if phase.endswith("cluster") else phase, {})
        if "offers_per_s" not in f:
            continue
        out.append({
            "topology": label, "offers_per_s": f["offers_per_s"],
            "p50_ms": f.get("dispatch_p50_ms"), "p99_ms": f.get("dispatch_p99_ms"),
            "p999_ms": f.get("dispatch_p999_ms"),
            "server_cpu_ms_per_order": _ms(f.get("server_cpu_us_per_offer")),
            "redis_cpu_ms_per_order": _ms(f.get("redis_cpu_us_per_offer")),
            "redis_cpu_ms_per_order_by_shard": {
                port: _ms(us) for port, us in f.get("redis_cpu_us_per_offer_by_shard", {}).items()
            },
        })  # fmt: skip
    return out


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def _kept_up_rate(ingest: Figures) -> float | None:
    """Reports/s at the highest rate the server kept up with (0 if none)."""
    runs = [r for r in (ingest, ingest.get("sustained")) if r and "kept_up" in r]
    if not runs:
        return None
    return max((r["received_per_s"] for r in runs if r["kept_up"]), default=0.0)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def _figure(key: str, value: Any) -> list[str]:
    """Table lines for one figure; GC and Redis statistics get a line per entry."""
    if key == "gc" and value:
        return [
            f"  gc {gen:<25} {g['count']:>6,.0f} collections {g['total_ms']:>9,.1f} ms"
            f" (max {g['max_ms']:,.1f} ms)"
            for gen, g in value.items()
        ]
    if key == "redis_commands" and value:
        head = f"  {key:<28} (top by time: calls, µs per call)"
        return [head] + [
            f"    {cmd:<26} {s['calls']:>10,.0f} {s['usec_per_call']:>8.2f}"
            for cmd, s in list(value.items())[:6]
        ]
    if key == "sustained" and value:
        return [f"  {key}:"] + [f"  {line}" for k, v in value.items() for line in _figure(k, v)]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return [f"  {key:<28} {f'{value:,}' if numeric else value}"]


def table(
    results: dict[str, Figures], goals: list[dict[str, Any]], shares: list[dict[str, Any]]
) -> str:
    lines = []
    for phase, figures in results.items():
        lines.append(f"{phase}")
        for key, value in figures.items():
            lines += _figure(key, value)
    lines.append("topologies (order -> offer at the worker; CPU per order)")
    for t in topologies(results):
        shards = " / ".join(f"{v}" for v in t["redis_cpu_ms_per_order_by_shard"].values())
        lines.append(
            f"  {t['topology']:<30} {t['offers_per_s']:>7,.0f} offers/s  p50 {t['p50_ms']} "
            f"p99 {t['p99_ms']} p99.9 {t['p999_ms']} ms  server {t['server_cpu_ms_per_order']} "
            f"ms  redis {t['redis_cpu_ms_per_order']} ms"
            + (f" ({shards} per shard)" if shards else "")
        )
    lines.append("ratios of CPU per message (figures, not targets)")
    for r in shares:
        value = "-" if r["value"] is None else f"{r['value']:,}"
        lines.append(f"  {r['ratio']:<32} {value:>10} x    (informational, not a target)")
    lines.append("targets")
    for g in goals:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[g["met"]]
        value = "-" if g["value"] is None else f"{g['value']:,}"
        lines.append(
            f"  {g['target']:<32} {value:>10} {g['unit']:<4} "
            f"(target {g['op']} {g['limit']:,}) {verdict}"
        )
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    wanted = [p for p in args.phases.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        plan = plan_from(args, workdir, args.redis_url or "")
        fds = procs.raise_nofile(max(plan.idle_connections, plan.connections) + 4096)
        plan, notes = capped(plan, fds)
        for note in notes:
            say(note)
        redis = None if plan.redis_url else procs.RedisServer(workdir).wait_ready()
        if redis is not None:
            plan = Plan(**{**plan.__dict__, "redis_url": redis.url})
        started, host = time.monotonic(), machine()
        try:
            results = await measure(plan, wanted, redis)
        finally:
            if redis is not None:
                redis.stop()
        goals, shares = targets(results), ratios(results)
        host["load_avg_end"] = machine()["load_avg"]
        report = {
            "quick": args.quick, "seconds": round(time.monotonic() - started, 1), "machine": host,
            "plan": {k: str(v) for k, v in plan.__dict__.items() if k != "secret"},
            "notes": notes,
            "results": results, "ratios": shares, "targets": goals,
            "topologies": topologies(results),
        }  # fmt: skip
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(table(results, goals, shares))
        say(f"done in {report['seconds']} s; figures in {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point for ``dispatch bench``."""
    unknown = set(args.phases.split(",")) - set(PHASES) - {""}
    if unknown:
        sys.stderr.write(
            f"dispatch bench: unknown phases {sorted(unknown)}; choose from {PHASES}\n"
        )
        return 2
    return uvloop.run(_main(args))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
