"""The benchmark's five measurements, each against fresh server processes.

1. ``bare``: the bare websockets server (``loadtest.bare_server``) under the
   ingest load: CPU per message, the floor for the stack.
2. ``uvicorn``: a raw ASGI app on uvicorn with the server's settings
   (``loadtest.uvicorn_floor``) that decodes and counts, under the same load:
   the floor with uvicorn's ASGI WebSocket layer in it.
3. ``ingest``: ``dispatch serve`` with the same connections and the same
   location rate: reports per second it keeps up with, CPU per report, and
   ``/metrics`` ingest lag. If it cannot keep up, a second run on a fresh
   server at 85% of what it managed shows the lag at a load it sustains.
4. ``dispatch``: orders at a fixed rate to a fleet that reports every few
   seconds and accepts everything (``loadtest.bench_orders``).
5. ``idle``: resident memory per connected, silent worker.
6. ``busy``: Redis time per search in a city with 90% of 10,000 workers on a
   job (``loadtest.bench_busy``).
7. ``memory``: Redis ``used_memory`` while orders are created and completed
   for several times the (shortened) retention: it must level off once
   finished orders start to expire, not grow with the history.

Every phase returns a flat dict of JSON-ready figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from loadtest import procs
from loadtest.bench_clients import (
    Area,
    BenchWorker,
    FleetStats,
    abort_all,
    make_fleet,
    send_locations,
)
from loadtest.bench_measure import Figures, Plan, Window, connect, pct, say, server_env
from loadtest.bench_orders import DispatchDriver
from server.commands.embedded_cluster import LocalCluster

SUSTAIN_SHARES = (0.85, 0.7)
KEPT_UP_ACK_MS = 1000.0  # a sampled location's ack later than this: a backlog is growing

# ---------------------------------------------------------------- 1 to 3: ingest


async def floor_phase(plan: Plan, kind: str) -> Figures:
    """A floor server under the ingest load: ``bare`` (the bare websockets
    server) or ``uvicorn`` (the raw ASGI app on uvicorn). Neither wants a
    ``hello``: the fleet connects and sends locations straight away."""
    say(f"{kind}: starting, {plan.connections} connections, {plan.location_rate}/s")
    child = await procs.start_floor(kind, log=plan.workdir / f"{kind}-server.log")
    stats = FleetStats()
    fleet = make_fleet(plan.connections, [kind], Area(), stats)
    try:
        rss0 = child.rss()
        figures = await connect(plan, fleet, child.port, kind, hello=False)
        figures["rss_per_conn_kib"] = round((child.rss() - rss0) / 1024 / len(fleet), 2)
        window = Window(plan, kind, child, None, lambda m: int(m["messages"]))
        figures.update(await _paced(plan, window, fleet, 0, plan.location_rate))
        return figures
    finally:
        abort_all(fleet)
        child.stop()


async def ingest_phase(plan: Plan, redis: procs.RedisServer | None) -> Figures:
    """The dispatch server under the same ingest load. If it does not keep up
    (takes fewer than it is sent, or sampled acks take over a second), again on
    a fresh server at 85%, then 70%, of the rate it took: ``sustained`` is the
    first of those that kept up, or the last tried."""
    figures = await _ingest_run(plan, redis, plan.location_rate, "ingest")
    took = figures["received_per_s"]
    for share in SUSTAIN_SHARES:
        if figures.get("sustained", figures)["kept_up"]:
            break
        rate = int(took * share / 500) * 500
        if rate <= 0:
            say("ingest: the server stored no reports at all; see its log")
            break
        say(f"ingest: it did not keep up; again at {rate:,}/s on a fresh server")
        figures["sustained"] = await _ingest_run(plan, redis, rate, f"ingest-{rate}")
    return figures


async def _ingest_run(
    plan: Plan, redis: procs.RedisServer | None, rate: int, label: str
) -> Figures:
    say(f"{label}: starting, {plan.connections} workers, {rate:,}/s")
    child = await procs.start_dispatch(
        plan.redis_url, plan.secret, [label], server_env(plan, label),
        plan.workdir / f"{label}-server.log",
    )  # fmt: skip
    stats = FleetStats()
    fleet = make_fleet(plan.connections, [label], Area(), stats)
    try:
        figures = await connect(plan, fleet, child.port, label)
        window = Window(plan, label, child, redis, lambda m: int(m["ingest"]["reports"]))
        figures.update(await _paced(plan, window, fleet, 100, rate))
        ingest = window.last.metrics["ingest"]
        figures.update({k: ingest[k] for k in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")})
        figures["ack_p50_ms"] = pct(stats.loc_ack_ms, 50)
        figures["ack_p99_ms"] = pct(stats.loc_ack_ms, 99)
        figures["kept_up"] = (
            figures["received_per_s"] >= 0.98 * figures["sent_per_s"]
            and (figures["ack_p99_ms"] or 0) <= KEPT_UP_ACK_MS
        )
        figures["errors"] = dict(stats.errors)
        return figures
    finally:
        abort_all(fleet)
        child.stop()


async def _paced(
    plan: Plan, window: Window, fleet: Sequence[BenchWorker], sample_every: int, rate: int
) -> Figures:
    """Send ``rate`` reports/s; measure the server over the window after the warm-up."""
    total = plan.warmup_s + plan.window_s
    sender = asyncio.create_task(send_locations(fleet, rate, total + 1, sample_every))
    await asyncio.sleep(plan.warmup_s)
    await window.open()
    await asyncio.sleep(plan.window_s)
    w = await window.close()
    sent = await sender
    sent_rate = sent.sent / sent.seconds
    say(f"  received {w['per_s']:,.0f}/s, {w['cpu_us_per_unit']:.1f} µs CPU each "
        f"(sent {sent_rate:,.0f}/s)")  # fmt: skip
    figures: Figures = {
        "target_per_s": rate,
        "sent_per_s": round(sent_rate, 1),
        "congested_skips": sent.congested,
        "server_messages": w["counted"],
        "received_per_s": w["per_s"],
        "cpu_us_per_message": w["cpu_us_per_unit"],
        "server_cpu_util": w["server_cpu_util"],
        "client_cpu_util": w["client_cpu_util"],
    }
    if "gc" in w:
        figures["gc"] = w["gc"]
    if "redis_commands" in w:
        figures["redis_cpu_us_per_message"] = w["redis_cpu_us_per_unit"]
        figures["redis_commands"] = w["redis_commands"]
    return figures


# ---------------------------------------------------------------- 4: dispatch


async def dispatch_phase(
    plan: Plan, redis: procs.RedisServer | None, processes: int = 1,
    cluster: LocalCluster | None = None,
) -> Figures:  # fmt: skip
    """Orders at a fixed rate to an available fleet reporting every few seconds,
    served by one node or by ``processes`` node processes on one port, on one
    Redis or on a local Redis Cluster (Redis CPU counted per master)."""
    name = "dispatch" if processes == 1 else f"dispatch{processes}"
    name += "-cluster" if cluster is not None else ""
    cities = [f"bench{i}" for i in range(plan.cities)]
    say(f"{name}: starting, {plan.dispatch_workers} workers in {len(cities)} cities, "
        f"{plan.order_rate} orders/s, {processes} server process(es)"
        + (f", {cluster.masters}-master cluster" if cluster else ""))  # fmt: skip
    child = await procs.start_dispatch(
        cluster.url if cluster else plan.redis_url, plan.secret, cities,
        server_env(plan, name), plan.workdir / f"{name}-server.log", workers=processes,
    )  # fmt: skip
    stats = FleetStats()
    fleet = make_fleet(plan.dispatch_workers, cities, Area(), stats, seed=2)
    driver = DispatchDriver(procs.HOST, child.port, plan.secret, cities, Area())
    driver.attach(fleet)
    try:
        figures = await connect(plan, fleet, child.port, name, available=True)
        window = Window(plan, name, child, None if cluster else redis,
                        lambda m: int(m["offers_made"]))  # fmt: skip
        if cluster is not None:
            window.shards = cluster.shard_processes()
        figures.update(await _orders(window, fleet, driver))
        figures["accept_ack_p50_ms"] = pct(stats.accept_ack_ms, 50)
        figures["accept_ack_p99_ms"] = pct(stats.accept_ack_ms, 99)
        figures["errors"] = dict(stats.errors)
        return figures
    finally:
        driver.close()
        abort_all(fleet)
        child.stop()


async def cluster_phase(plan: Plan, processes: int = 2) -> Figures:
    """The dispatch phase on a local Redis Cluster of three masters with a replica each."""
    cluster = LocalCluster(plan.workdir / "cluster")
    await asyncio.to_thread(cluster.start)
    try:
        figures = await dispatch_phase(plan, None, processes, cluster)
        figures["shards"] = cluster.masters
        return figures
    finally:
        cluster.stop()


async def _orders(window: Window, fleet: Sequence[BenchWorker], driver: DispatchDriver) -> Figures:
    plan = window.plan
    total = plan.warmup_s + plan.window_s
    rate = len(fleet) / plan.report_every_s
    sender = asyncio.create_task(send_locations(fleet, rate, total + 6, 0))
    orders = asyncio.create_task(driver.run(plan.order_rate, total))
    await asyncio.sleep(plan.warmup_s)
    since = time.perf_counter()
    await window.open()
    await asyncio.sleep(plan.window_s)
    w = await window.close()
    await orders
    sender.cancel()
    r = driver.collect(since)
    say(f"  dispatch p50 {pct(r.dispatch_ms, 50)} ms, p99 {pct(r.dispatch_ms, 99)} ms "
        f"over {len(r.dispatch_ms)} orders; {w['per_s']:,.0f} offers/s")  # fmt: skip
    return {
        "order_rate": plan.order_rate,
        "orders_posted_per_s": round(r.orders / r.seconds, 1),
        "post_errors": dict(r.post_errors),
        "offers_per_s": w["per_s"],
        "measured_orders": len(r.dispatch_ms) + r.unoffered,
        "unoffered": r.unoffered,
        "dispatch_p50_ms": pct(r.dispatch_ms, 50),
        "dispatch_p99_ms": pct(r.dispatch_ms, 99),
        "dispatch_p999_ms": pct(r.dispatch_ms, 99.9),
        "dispatch_max_ms": round(max(r.dispatch_ms), 3) if r.dispatch_ms else None,
        "server_loop_lag_ms": window.last.metrics.get("loop_lag_ms"),
        "post_p50_ms": pct(r.post_ms, 50),
        "post_p99_ms": pct(r.post_ms, 99),
        "followed": r.followed,
        "notify_samples": len(r.notify_ms),
        "notify_p50_ms": pct(r.notify_ms, 50),
        "notify_p99_ms": pct(r.notify_ms, 99),
        "server_cpu_us_per_offer": w["cpu_us_per_unit"],
        "server_cpu_util": w["server_cpu_util"],
        "client_cpu_util": w["client_cpu_util"],
        "redis_cpu_us_per_offer": w.get("redis_cpu_us_per_unit"),
        "redis_cpu_us_per_offer_by_shard": w.get("redis_cpu_us_per_unit_by_shard", {}),
        "redis_commands": w.get("redis_commands"),
        **({"gc": w["gc"]} if "gc" in w else {}),
    }


# ---------------------------------------------------------------- 5: idle


async def idle_phase(plan: Plan) -> Figures:
    """Resident memory per connected worker that says ``hello`` and nothing more."""
    say(f"idle: starting, {plan.idle_connections} connections")
    child = await procs.start_dispatch(
        plan.redis_url, plan.secret, ["idle"], server_env(plan, "idle"),
        plan.workdir / "idle-server.log",
    )  # fmt: skip
    fleet = make_fleet(plan.idle_connections, ["idle"], Area(), FleetStats(), seed=3)
    try:
        await asyncio.sleep(0.5)
        rss0 = child.rss()
        figures = await connect(plan, fleet, child.port, "idle")
        await asyncio.sleep(2.0)
        rss1 = child.rss()
        connected = int((await child.metrics())["workers_connected"])
        per_conn = (rss1 - rss0) / 1024 / max(connected, 1)
        say(f"  {connected} connected, {per_conn:.1f} KiB RSS each")
        figures.update({
            "workers_connected": connected, "rss_before_mib": round(rss0 / 2**20, 1),
            "rss_after_mib": round(rss1 / 2**20, 1), "rss_per_conn_kib": round(per_conn, 2),
        })  # fmt: skip
        return figures
    finally:
        abort_all(fleet)
        child.stop()


# ---------------------------------------------------------------- 7: memory

MEMORY_RETENTION_S = 10
MEMORY_SAMPLE_S = 2.5


def _used_memory(redis: procs.RedisServer) -> int:
    info = redis.command("INFO", "memory").decode()
    return next(
        int(line.split(":")[1]) for line in info.splitlines() if line.startswith("used_memory:")
    )


async def memory_phase(plan: Plan, redis: procs.RedisServer | None) -> Figures:
    """Orders completed at ``order_rate`` for four retention periods, Redis memory sampled."""
    if redis is None:
        return {"skipped": "needs the bench's own Redis (not --redis-url)"}
    cities = [f"mem{i}" for i in range(plan.cities)]
    seconds = 6 * MEMORY_RETENTION_S
    say(f"memory: {plan.order_rate} orders/s for {seconds} s, retention {MEMORY_RETENTION_S} s")
    env = {**server_env(plan, "memory"), "DISPATCH_RETENTION_S": str(MEMORY_RETENTION_S)}
    child = await procs.start_dispatch(
        plan.redis_url, plan.secret, cities, env, plan.workdir / "memory-server.log"
    )
    stats = FleetStats()
    fleet = make_fleet(plan.dispatch_workers, cities, Area(), stats, seed=4)
    driver = DispatchDriver(
        procs.HOST, child.port, plan.secret, cities, Area(), sample_every=1_000_000
    )
    driver.attach(fleet)
    try:
        await connect(plan, fleet, child.port, "memory", available=True)
        base = _used_memory(redis)
        sender = asyncio.create_task(send_locations(fleet, len(fleet) / plan.report_every_s,
                                                    seconds + 6, 0))  # fmt: skip
        orders = asyncio.create_task(driver.run(plan.order_rate, seconds))
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        while not orders.done():
            await asyncio.sleep(MEMORY_SAMPLE_S)
            mib = (_used_memory(redis) - base) / 2**20
            samples.append((round(time.monotonic() - start), round(mib, 1)))
            say(f"  {samples[-1][0]:>3} s: Redis holds {mib:,.1f} MiB more than at the start")
        await orders
        sender.cancel()
        # Once two retention periods have passed, as many orders expire as end: memory
        # must stay level. Compare the mean of periods 3-4 with that of periods 5-6.
        r = MEMORY_RETENTION_S
        early = [mib for t, mib in samples if 2 * r <= t < 4 * r]
        late = [mib for t, mib in samples if 4 * r <= t < 6 * r]
        level = sum(early + late) / max(1, len(early + late))
        per_1000 = level / (plan.order_rate * r / 1000)
        growth = (sum(late) / len(late)) / (sum(early) / len(early)) - 1 if early and late else None
        return {
            "order_rate": plan.order_rate,
            "retention_s": r,
            "samples_s_mib": samples,
            "mib_per_1000_orders_kept": round(per_1000, 2),
            "growth_after_2_retentions_pct": None if growth is None else round(100 * growth, 1),
        }
    finally:
        driver.close()
        abort_all(fleet)
        child.stop()


async def busy_phase(plan: Plan) -> Figures:
    from loadtest.bench_busy import busy_phase as run_busy  # imports server: only when asked

    return await run_busy(plan)
