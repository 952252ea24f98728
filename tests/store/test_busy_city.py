"""A busy city: thousands of unavailable workers around a pickup cost the search nothing.

The search reads the index of free workers (``free:<skill>``), so workers
who are paused, on a job or holding an offer are never scanned, and a free
worker behind thousands of busy ones is found. ``dispatch bench`` measures
the tick's Redis time in the same setting; here we check what is found.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from protocol.messages import CreateOrder, Point
from server.process.settings import Settings
from server.services.dispatcher import Dispatcher
from server.store.keys import City, WorkerId, new_order_id
from server.store.redis_store import Store
from tests.support import one_tag, scratch_city

NODE = "node-busy"
PICKUP = Point(lat=52.52, lng=13.40)
BUSY = 5000


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    # Seeding 5,000 workers sends 5,000 scripts at once: on a loaded two-core
    # machine running a local cluster, the last ones wait longer than the
    # server's 2 s per call. The deadline is not what this test is about.
    store = Store(one_tag(redis_url, timeout_s=15.0))
    yield store
    await store.link.aclose()


async def _workers(
    store: Store, city: str, wids: list[str], spread_deg: float, *, busy: bool
) -> None:
    rng = random.Random(len(wids))
    await asyncio.gather(*(
        store.connect(city, WorkerId(w), NODE, f"s-{w}", ("delivery",), 1, 60_000) for w in wids
    ))  # fmt: skip
    await asyncio.gather(*(store.set_status(city, WorkerId(w), "go_available") for w in wids))
    spots = {
        w: (PICKUP.lng + rng.uniform(-spread_deg, spread_deg),
            PICKUP.lat + rng.uniform(-spread_deg, spread_deg), 0)
        for w in wids
    }  # fmt: skip
    await store.locate({city: spots}, dict.fromkeys(wids, ("delivery",)), {city: wids})
    if busy:  # paused here; on a job or holding an offer is the same to the index
        await asyncio.gather(*(store.set_status(city, WorkerId(w), "pause") for w in wids))


async def test_a_free_worker_behind_thousands_of_busy_ones_is_found(store: Store) -> None:
    """5,000 busy workers within about 600 m of the pickup, one free worker 2 km out: the
    order is offered to the free one, and the index holds only it."""
    city = scratch_city()
    await _workers(store, city, [f"b{i}" for i in range(BUSY)], 0.004, busy=True)
    await store.connect(city, WorkerId("free"), NODE, "s-free", ("delivery",), 1, 60_000)
    await store.set_status(city, WorkerId("free"), "go_available")
    far = {"free": (PICKUP.lng, PICKUP.lat + 0.018, 0)}  # ~2 km out
    await store.locate({city: far}, {"free": ("delivery",)}, {city: ["free"]})
    assert await store.call("ZCARD", f"d:{{{city}}}:free:delivery") == 1
    settings = Settings(cities=(city,), search_count=10)
    d = Dispatcher(store, settings, lambda: (NODE,))
    oid = new_order_id(City(city))
    created = await d.create_order(
        oid, "cust", CreateOrder(city=city, skill="delivery", pickup=PICKUP)
    )
    assert created is not None
    await d.drain()
    fields = await store.order_fields(oid)
    assert (fields["state"], fields["holders"]) == ("offered", "free")
