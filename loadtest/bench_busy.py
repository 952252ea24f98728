"""The bench's ``busy`` phase: what one search costs Redis in a busy city.

A city of 10,000 workers, 90% of them on a job and most of those in a dense
centre (within about a kilometre of the pickups), the rest free and spread
over the city. Then orders at the centre are dispatched one at a time (and
cancelled again, so the free fleet stays the same), and Redis's own time for
each ``tick`` script (the search) is read from its SLOWLOG, which records
every command's execution time in microseconds when its threshold is 0.

The workers are put on their jobs through the real path (an order at each
one's position, dispatched, accepted), so the search sees exactly what it
would in production. Unlike the other phases this one drives the store
in-process: it measures a script inside Redis, not the server's sockets, so
it imports ``server``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar, cast

from loadtest.bench_measure import Figures, Plan, pct, say
from protocol.messages import CreateOrder, OfferMode, Point
from server.core.errors import Refused
from server.process.settings import Settings
from server.services.dispatcher import Dispatcher
from server.store.cluster import open_link
from server.store.keys import City, OrderId, WorkerId, new_order_id
from server.store.records import order_fields
from server.store.redis_store import Store

T = TypeVar("T")

CITY = "busy"
NODE = "bench-busy"
CENTRE = Point(lat=52.52, lng=13.40)
BATCH = 500


async def _each(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await in batches (the calls of one batch pipeline on the store's one connection)."""
    out: list[T] = []
    for i in range(0, len(calls), BATCH):
        out += await asyncio.gather(*calls[i : i + BATCH])
    return out


def _spot(rng: random.Random, spread_deg: float) -> tuple[float, float, int]:
    return (CENTRE.lng + rng.uniform(-spread_deg, spread_deg),
            CENTRE.lat + rng.uniform(-spread_deg, spread_deg), 0)  # fmt: skip


async def _fleet(store: Store, d: Dispatcher, workers: int, busy_share: float) -> int:
    """Connect the fleet, then put ``busy_share`` of it on a job; how many are on one."""
    rng = random.Random(5)
    busy = int(workers * busy_share)
    wids = [f"w{i}" for i in range(workers)]
    spots = {w: _spot(rng, 0.008 if i < busy else 0.05) for i, w in enumerate(wids)}
    await _each([store.connect(CITY, WorkerId(w), NODE, f"s{w}", ("delivery",), 1, 3_600_000)
                 for w in wids])  # fmt: skip
    await _each([store.set_status(CITY, WorkerId(w), "go_available") for w in wids])
    await store.locate({CITY: spots}, dict.fromkeys(wids, ("delivery",)), {CITY: wids})
    on_job = 0
    for start in range(0, busy, BATCH):
        chunk = wids[start : min(start + BATCH, busy)]
        oids = [new_order_id(City(CITY)) for _ in chunk]
        bodies = [
            CreateOrder(city=CITY, skill="delivery", pickup=Point(lat=spots[w][1], lng=spots[w][0]))
            for w in chunk
        ]
        await _each([store.create_order(o, _fields(o, b), 5000, 3_600_000)
                     for o, b in zip(oids, bodies, strict=True)])  # fmt: skip
        await _each([d.dispatch(o) for o in oids])
        records = await _each([store.order_fields(o) for o in oids])
        for oid, fields in zip(oids, records, strict=True):
            holder = fields.get("holders", "")
            if holder:
                try:
                    await d.accept(WorkerId(holder), CITY, f"{oid}/1")
                    on_job += 1
                except Refused:
                    pass
    return on_job


def _fields(oid: OrderId, body: CreateOrder) -> dict[str, str]:
    return order_fields(oid, "bench", body, OfferMode.SEQUENTIAL, body.skill or "")


async def busy_phase(plan: Plan) -> Figures:
    """Redis time per search in a city of ``plan.dispatch_workers`` workers, 90% busy."""
    workers = plan.dispatch_workers
    say(f"busy: {workers:,} workers, 90% on a job, most within ~1 km of the pickups")
    store = Store(open_link(plan.redis_url))
    settings = Settings(cities=(CITY,), search_count=10)
    d = Dispatcher(store, settings, lambda: (NODE,))
    try:
        started = time.monotonic()
        on_job = await _fleet(store, d, workers, 0.9)
        free = cast(int, await store.call("ZCARD", f"d:{{{CITY}}}:free:delivery"))
        say(f"  fleet ready in {time.monotonic() - started:.0f} s: {on_job:,} on a job, "
            f"{free:,} in the search index")  # fmt: skip
        sha = store.script_id("tick").encode()
        await store.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        await store.call("CONFIG", "SET", "slowlog-max-len", "100000")
        await store.call("SLOWLOG", "RESET")
        rng, offered, samples = random.Random(9), 0, 1000
        for _ in range(samples):
            lat = CENTRE.lat + rng.uniform(-0.004, 0.004)
            lng = CENTRE.lng + rng.uniform(-0.004, 0.004)
            oid = new_order_id(City(CITY))
            body = CreateOrder(city=CITY, skill="delivery", pickup=Point(lat=lat, lng=lng))
            await store.create_order(oid, _fields(oid, body), 5000, 60_000)
            await d.dispatch(oid)
            offered += (await store.order_fields(oid)).get("state") == "offered"
            await store.cancel(oid, "customer", "bench", 0)  # the free fleet stays as it was
        log = cast(list[list[object]], await store.call("SLOWLOG", "GET", "100000"))
        ticks = [cast(int, e[2]) for e in log if sha in cast(list[bytes], e[3])]
    finally:
        await store.call("CONFIG", "SET", "slowlog-log-slower-than", "10000")
        store.link.close()
    micros = [float(t) for t in ticks]
    figures: Figures = {
        "workers": workers, "on_a_job": on_job, "in_search_index": free,
        "searches": len(micros), "orders_offered": offered,
        "tick_redis_p50_us": pct(micros, 50), "tick_redis_p99_us": pct(micros, 99),
        "tick_redis_max_us": max(micros, default=None),
    }  # fmt: skip
    say(f"  tick in Redis: p50 {figures['tick_redis_p50_us']} µs, "
        f"p99 {figures['tick_redis_p99_us']} µs over {len(micros)} searches")  # fmt: skip
    return figures
