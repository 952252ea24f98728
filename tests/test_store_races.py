"""Every dispatch race, resolved inside one Redis script, against a real redis-server.

Time comes into the store as an argument, so each interleaving is played in a
fixed order here: no sleeps, no luck.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from protocol.messages import CreateOrder, OfferMode, Point
from server.dispatcher import Dispatcher
from server.settings import Settings
from server.store.keys import City, OrderId, WorkerId, new_order_id
from server.store.mux import Mux
from server.store.redis_store import Refused, Store
from tests.support import unique_city

T0 = 1_800_000_000_000  # ms


class Clock:
    """A hand-driven clock for the dispatcher (seconds)."""

    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    client = aioredis.from_url(redis_url)
    store = Store(client, Mux(redis_url))
    yield store
    store.mux.close()
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def dispatcher(store: Store, clock: Clock, **kw: object) -> Dispatcher:
    settings = Settings(offer_timeout_s=10, max_dispatch_s=60, retry_interval_s=5, **kw)  # type: ignore[arg-type]
    return Dispatcher(store, settings, clock=clock)


async def add_workers(
    store: Store, city: str, *wids: str, skills: tuple[str, ...] = ("delivery",)
) -> None:
    spots = {}
    for i, wid in enumerate(wids):
        await store.connect(city, WorkerId(wid), "node-x", skills, 1)
        await store.set_status(city, WorkerId(wid), "go_available")
        spots[wid] = (13.40, 52.52 + 0.001 * (i + 1), T0)
    await store.write_positions({city: spots})


async def new_order(d: Dispatcher, city: str, mode: OfferMode = OfferMode.SEQUENTIAL) -> OrderId:
    oid = new_order_id(City(city))
    body = CreateOrder(city=city, skill="delivery", pickup=Point(lat=52.52, lng=13.40), mode=mode)
    assert await d.create_order(oid, "cust", body) is not None
    await d.drain()
    return oid


async def state_of(store: Store, oid: OrderId) -> str:
    return (await store.order_fields(oid))["state"]


async def worker_state(store: Store, city: str, wid: str) -> str:
    return (await store.connect(city, WorkerId(wid), "node-x", ("delivery",), 1)).state


async def test_accept_before_timeout_wins(store: Store, clock: Clock) -> None:
    """An accept reaching Redis before the expiry tick assigns; the tick then does nothing."""
    city = unique_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    clock.ms += 11_000
    await d.dispatch(oid)
    assert await state_of(store, oid) == "assigned"
    assert await worker_state(store, city, "b") == "available"


async def test_timeout_before_accept_wins(store: Store, clock: Clock) -> None:
    """An expiry tick that runs first moves the offer on; the late accept gets offer_expired."""
    city = unique_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    clock.ms += 11_000
    await d.dispatch(oid)
    with pytest.raises(Refused) as err:
        await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert err.value.code == "offer_expired"
    fields = await store.order_fields(oid)
    assert fields["state"] == "offered" and fields["holders"] == "b"
    assert await worker_state(store, city, "a") == "available"


async def test_cancel_before_accept(store: Store, clock: Clock) -> None:
    """A cancel that runs first withdraws the offer; the accept gets order_cancelled."""
    city = unique_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    await d.cancel(oid, "cust")
    with pytest.raises(Refused) as err:
        await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert err.value.code == "order_cancelled"
    assert await worker_state(store, city, "a") == "available"


async def test_accept_before_cancel(store: Store, clock: Clock) -> None:
    """An accept that runs first assigns; the cancel then ends the job and frees the worker."""
    city = unique_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await d.cancel(oid, "cust")
    assert await state_of(store, oid) == "cancelled"
    assert await worker_state(store, city, "a") == "available"


async def test_two_accepts_of_one_broadcast(store: Store, clock: Clock) -> None:
    """Two accepts of one broadcast offer: the first wins, the second gets offer_taken."""
    city = unique_city()
    await add_workers(store, city, "a", "b", "c")
    d = dispatcher(store, clock)
    oid = await new_order(d, city, OfferMode.BROADCAST)
    assert (await store.order_fields(oid))["holders"] == "a,b,c"
    await d.accept(WorkerId("b"), city, f"{oid}/1")
    with pytest.raises(Refused) as err:
        await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert err.value.code == "offer_taken"
    assert [await worker_state(store, city, w) for w in "abc"] == [
        "available",
        "on_job",
        "available",
    ]


async def test_reject_of_expired_offer_changes_nothing(store: Store, clock: Clock) -> None:
    """Rejecting an offer that already expired is refused with offer_expired and changes nothing."""
    city = unique_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    clock.ms += 11_000
    await d.dispatch(oid)
    before = await store.order_fields(oid)
    with pytest.raises(Refused) as err:
        await d.reject(WorkerId("a"), city, f"{oid}/1", "busy")
    assert err.value.code == "offer_expired"
    assert await store.order_fields(oid) == before


async def test_accept_with_foreign_or_stale_offer_id(store: Store, clock: Clock) -> None:
    """An offer never made to this worker is offer_not_found; an old attempt is offer_expired."""
    city = unique_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    for bad in (f"{oid}/1", f"{oid}/7", "nonsense", "other.0123456789abcdef/1"):
        with pytest.raises(Refused) as err:
            await d.accept(WorkerId("b"), city, bad)
        assert err.value.code == "offer_not_found", bad
    await d.reject(WorkerId("a"), city, f"{oid}/1", "busy")
    await d.drain()
    with pytest.raises(Refused) as err:
        await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert err.value.code == "offer_expired"
    await d.accept(WorkerId("b"), city, f"{oid}/2")
    assert await state_of(store, oid) == "assigned"


async def test_two_nodes_dispatching_one_order(store: Store, clock: Clock) -> None:
    """Two nodes that tick the same order and both try to offer it: only the first offer is made."""
    city = unique_city()
    await add_workers(store, city, "a", "b")
    d1, d2 = dispatcher(store, clock), dispatcher(store, clock)
    oid = await new_order(d1, city)
    clock.ms += 11_000  # the offer to "a" expires; both nodes claim the order at once
    now = clock.ms
    t1 = await store.tick(oid, now, [5000], 50, now - 60_000, now + 5000)
    t2 = await store.tick(oid, now, [5000], 50, now - 60_000, now + 5000)
    assert t1.dv == t2.dv and [c.worker_id for c in t2.candidates] == ["b"]
    made1, _ = await d1._offer(oid, t1, list(t1.candidates), now)
    made2, why = await d2._offer(oid, t2, list(t2.candidates), now)
    assert (made1, made2, why) == (True, False, ["stale"])
    assert (await store.order_fields(oid))["offer"] == f"{oid}/2"


async def test_never_the_same_worker_twice(store: Store, clock: Clock) -> None:
    """After a worker rejects an order it is never offered that order again."""
    city = unique_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    await d.reject(WorkerId("a"), city, f"{oid}/1", "busy")
    await d.drain()
    fields = await store.order_fields(oid)
    assert fields["state"] == "dispatching" and "holders" not in fields


async def test_no_worker_ends_unassigned(store: Store, clock: Clock) -> None:
    """An order nobody can take retries, then ends unassigned after the maximum dispatch time."""
    city = unique_city()
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    assert await state_of(store, oid) == "dispatching"
    clock.ms += 61_000
    await d.dispatch(oid)
    view = await store.order_view(oid)
    assert view is not None
    events = view.events
    assert events[-1].type == "unassigned" and events[-1].reason == "no_worker"


async def test_stale_and_unskilled_workers_are_not_candidates(store: Store, clock: Clock) -> None:
    """Only workers with a fresh location and the order's skill are offered the order."""
    city = unique_city()
    await add_workers(store, city, "plumber", skills=("plumbing",))
    await add_workers(store, city, "stale")
    await add_workers(store, city, "fresh")
    await store.write_positions({city: {"stale": (13.40, 52.5201, T0 - 120_000)}})
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "fresh"


async def test_status_change_refused_with_offer_or_job(store: Store, clock: Clock) -> None:
    """A worker holding an offer gets offer_pending; one holding a job gets active_job."""
    city = unique_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    with pytest.raises(Refused) as err:
        await d.set_status(WorkerId("a"), city, "offline")
    assert err.value.code == "offer_pending"
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    with pytest.raises(Refused) as err:
        await d.set_status(WorkerId("a"), city, "paused")
    assert err.value.code == "active_job"


async def test_disconnected_worker_is_no_candidate(store: Store, clock: Clock) -> None:
    """A worker whose socket closed is not offered orders, though it stays available."""
    city = unique_city()
    await add_workers(store, city, "gone", "here")
    await store.disconnect(city, WorkerId("gone"), "node-x")
    d = dispatcher(store, clock)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "here"


async def test_forget_stale_drops_only_old_positions(store: Store) -> None:
    """Positions older than the cut-off leave the geo set; fresh ones stay."""
    city = unique_city()
    await add_workers(store, city, "old", "new")
    await store.write_positions({city: {"old": (13.40, 52.52, T0 - 60_000)}})
    assert await store.forget_stale(city, T0 - 30_000) == 1
    assert await store.position(city, "old") is None
    assert await store.position(city, "new") is not None


async def test_search_looks_past_busy_nearest_workers(store: Store, clock: Clock) -> None:
    """When the nearest workers are all busy, the search reaches the free one behind them."""
    city = unique_city()
    await add_workers(store, city, "b1", "b2", "b3", "b4", "b5", "free")
    for wid in ("b1", "b2", "b3", "b4", "b5"):
        await store.set_status(city, WorkerId(wid), "pause")
    d = dispatcher(store, clock, search_count=1)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "free"


async def test_nearer_ring_wins_over_more_candidates(store: Store, clock: Clock) -> None:
    """A worker in the first radius step is chosen; the search does not widen past it."""
    city = unique_city()
    await add_workers(store, city, "near", "far")
    await store.write_positions({city: {"far": (13.40, 52.535, T0)}})  # ~1.7 km
    d = dispatcher(store, clock, offer_mode=OfferMode.BROADCAST)
    oid = new_order_id(City(city))
    await d.create_order(oid, "cust", CreateOrder(city=city, skill="delivery",
                         pickup=Point(lat=52.52, lng=13.40)))  # fmt: skip
    await d.drain()
    assert (await store.order_fields(oid))["holders"] == "near"
