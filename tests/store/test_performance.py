"""Ranking by performance against a real redis-server on a hand-driven clock:
workers' standings read from their counters, a better record winning over a
little distance, the category's own weights, and a worker that hands jobs back
too often offered orders later, not never."""

from __future__ import annotations

import uuid

from protocol.catalogue import CategoryDefinition, DispatchPolicy, Ranking, Step
from protocol.messages import CreateOrder, Point
from server.core.earnings import DAY_MS
from server.services.dispatcher import Dispatcher
from server.services.node_catalogue import Catalogue
from server.services.overrides import Overrides
from server.store.catalogue import CatalogueStore
from server.store.keys import City, OrderId, WorkerId, new_order_id
from server.store.performance import standing
from server.store.redis_store import Store
from tests.pinned import Clock, add_workers, dispatcher, locate, new_order, state_of
from tests.support import scratch_city


async def fresh(store: Store, city: str, clock: Clock, *wids: str) -> None:
    """Each of ``wids`` reports where it was placed, now."""
    spots = {w: (13.40, 52.52 + 0.001 * (i + 1), clock.ms) for i, w in enumerate(wids)}
    await locate(store, city, spots, first=False)


async def holder(store: Store, oid: OrderId) -> str:
    return (await store.order_fields(oid)).get("holders", "")


async def complete(d: Dispatcher, city: str, wid: str, oid: OrderId) -> None:
    for step in ("arrived", "started", "completed"):
        await d.progress(WorkerId(wid), city, oid, step)


async def record(store: Store, clock: Clock, city: str, *, good: str, bad: str) -> None:
    """Five orders that ``bad`` (the nearer) rejects and ``good`` accepts and completes."""
    d = dispatcher(store, city)
    for _ in range(5):
        await fresh(store, city, clock, bad, good)
        oid = await new_order(d, city)
        assert await holder(store, oid) == bad
        await d.reject(WorkerId(bad), city, f"{oid}/1", "busy")
        await d.drain()
        await d.accept(WorkerId(good), city, f"{oid}/2")
        await complete(d, city, good, oid)
        clock.ms += 1_000


def test_a_standing_is_read_from_the_counters() -> None:
    """30-day rates from min_samples on, the last job's time, a newcomer below
    min_samples answered offers."""
    day = 20_000
    fields = {"a:20000:n": "4", "j:19990:n": "1", "x:19999:n": "1", "h:20000:o1": "1",
              "r:20000:n": "5", "r:20000:s": "22", "last": str(day * DAY_MS + 7)}  # fmt: skip
    got = standing(fields, day, 5)
    assert (got.acceptance, got.rating, got.cancellation) == (round(4 / 6, 3), 4.4, None)
    assert (got.last_job_at, got.newcomer) == (day * DAY_MS + 7, False)
    assert standing({"a:20000:n": "4"}, day, 5).newcomer
    assert standing({}, day, 5).last_job_at is None


async def test_a_better_record_wins_over_a_little_distance(store: Store, clock: Clock) -> None:
    """After five orders "near" rejected and "far" took, the next goes to "far"
    (111 m further) first."""
    city = scratch_city()
    await add_workers(store, city, "near", "far")
    await record(store, clock, city, good="far", bad="near")
    await fresh(store, city, clock, "near", "far")
    oid = await new_order(dispatcher(store, city), city)  # a new node: nothing cached
    assert await holder(store, oid) == "far"


async def test_a_categorys_weights_rank_its_orders(store: Store, clock: Clock) -> None:
    """A category that weighs only distance sends its order to "near" all the same."""
    city, key = scratch_city(), f"rank-{uuid.uuid4().hex[:8]}"
    catalogue = Catalogue(CatalogueStore(store))
    only_distance = Ranking(rating=0, acceptance=0, cancellation=0, idle=0, fair_share=0)
    await catalogue.apply(CategoryDefinition(
        key=key, name="By distance", skills=["delivery"], steps=[Step(name="done")],
        dispatch=DispatchPolicy(ranking=only_distance)), "test")  # fmt: skip
    await add_workers(store, city, "near", "far")
    await record(store, clock, city, good="far", bad="near")
    await fresh(store, city, clock, "near", "far")
    d = dispatcher(store, city, catalogue)
    oid = new_order_id(City(city))
    body = CreateOrder(city=city, category=key, pickup=Point(lat=52.52, lng=13.40))
    await d.create_order(oid, "cust", body)
    await d.drain()
    assert await holder(store, oid) == "near"


async def test_a_worker_that_hands_jobs_back_gets_offers_later_not_never(
    store: Store, clock: Clock
) -> None:
    """Two hand-backs in five accepted jobs (0.4 > 0.2): a new order waits the
    10 s before it is offered to that worker, even when nobody else is there."""
    city = scratch_city()
    await add_workers(store, city, "flaky")
    d = dispatcher(store, city)
    overrides = Overrides(d)
    for i in range(5):
        await fresh(store, city, clock, "flaky")
        oid = await new_order(d, city)
        await d.accept(WorkerId("flaky"), city, f"{oid}/1")
        if i < 2:
            await overrides.hand_back(oid, WorkerId("flaky"), "flat tyre")
            await d.drain()
            await d.cancel(oid, "operator", "ops")
        else:
            await complete(d, city, "flaky", oid)
    await fresh(store, city, clock, "flaky")
    d = dispatcher(store, city)  # a new node: nothing cached
    oid = await new_order(d, city)
    start = clock.ms
    assert await state_of(store, oid) == "dispatching" and await holder(store, oid) == ""
    clock.ms = start + 5_000  # the retry: still held back
    await fresh(store, city, clock, "flaky")
    await d.sweep()
    assert await holder(store, oid) == ""
    clock.ms = start + 10_000  # the order has looked for 10 s
    await fresh(store, city, clock, "flaky")
    await d.sweep()
    assert await holder(store, oid) == "flaky"
