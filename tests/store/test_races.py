"""Every dispatch race, resolved inside one Redis script, against a real redis-server.

Time comes into the store as an argument, so each interleaving is played in a
fixed order here: no sleeps, no luck.
"""

from __future__ import annotations

from typing import cast

import pytest

from protocol.messages import CreateOrder, OfferMode, Point
from server.core.earnings import DAY_MS
from server.core.errors import Refused
from server.store import keys, records
from server.store.engine import Stale
from server.store.keys import City, OfferId, WorkerId, new_order_id
from server.store.performance import PerformanceStore
from server.store.redis_store import Store
from tests.pinned import (
    NODE,
    T0,
    Clock,
    add_workers,
    connect,
    dispatcher,
    locate,
    new_order,
    state_of,
    worker_state,
)
from tests.support import scratch_city


async def test_accept_before_timeout_wins(store: Store, clock: Clock) -> None:
    """An accept reaching Redis before the expiry tick assigns; the tick then does nothing."""
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    clock.ms += 11_000
    await d.dispatch(oid)
    assert await state_of(store, oid) == "assigned"
    assert await worker_state(store, city, "b") == "available"


async def test_timeout_before_accept_wins(store: Store, clock: Clock) -> None:
    """An expiry tick that runs first moves the offer on; the late accept gets offer_expired."""
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
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
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    await d.cancel(oid, "customer", "cust")
    with pytest.raises(Refused) as err:
        await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert err.value.code == "order_cancelled"
    assert await worker_state(store, city, "a") == "available"


async def test_accept_before_cancel(store: Store, clock: Clock) -> None:
    """An accept that runs first assigns; the cancel then ends the job and frees the worker."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await d.cancel(oid, "customer", "cust")
    assert await state_of(store, oid) == "cancelled"
    assert await worker_state(store, city, "a") == "available"


async def test_two_accepts_of_one_broadcast(store: Store, clock: Clock) -> None:
    """Two accepts of one broadcast offer: the first wins, the second gets offer_taken."""
    city = scratch_city()
    await add_workers(store, city, "a", "b", "c")
    d = dispatcher(store, city)
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


async def test_an_accept_missing_keys_asks_for_them_before_writing(
    store: Store, clock: Clock
) -> None:
    """An accept sent with only its fixed keys (as by a node that never saw the offer)
    answers need with the other holders' keys and writes nothing; the store sends it
    again with them and it goes through."""
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
    oid = await new_order(d, city, OfferMode.BROADCAST)
    before = await store.order_fields(oid), await worker_state(store, city, "b")
    fixed = [keys.order(oid), keys.timers(city), keys.worker(city, "b"), keys.tried(oid)]
    raw = await store.call("EVALSHA", store.script_id("accept"), len(fixed), *fixed,
                           clock.ms, oid, f"{oid}/1", "b")  # fmt: skip
    assert isinstance(raw, list) and raw[0] == b"need"
    asked = {k.decode() for k in raw[1]}
    assert {keys.worker(city, "a"), keys.events(oid), keys.online(city)} <= asked
    assert (await store.order_fields(oid), await worker_state(store, city, "b")) == before
    replans = store.replans["accept"]
    fresh = Store(store.link, pinned=clock)  # knows no holders or skills: must ask
    await fresh.accept(OfferId(f"{oid}/1"), WorkerId("b"), city)
    assert fresh.replans["accept"] == 1 and store.replans["accept"] == replans
    assert [await worker_state(store, city, w) for w in "ab"] == ["available", "on_job"]


async def test_reject_of_expired_offer_changes_nothing(store: Store, clock: Clock) -> None:
    """Rejecting an offer that already expired is refused with offer_expired and changes nothing."""
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
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
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
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
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d1, d2 = dispatcher(store, city), dispatcher(store, city)
    oid = await new_order(d1, city)
    clock.ms += 11_000  # the offer to "a" expires; both nodes claim the order at once
    t1 = await store.tick(oid, [5000], 50, 60_000, 5000, [NODE])
    t2 = await store.tick(oid, [5000], 50, 60_000, 5000, [NODE])
    assert t1.dv == t2.dv and [c.worker_id for c in t2.candidates] == ["b"]
    first = await d1._offer(oid, t1, list(t1.candidates))
    second = await d2._offer(oid, t2, list(t2.candidates))
    assert (first.made, second.made, second.reason) == (1, 0, "stale")
    assert (await store.order_fields(oid))["offer"] == f"{oid}/2"


async def test_never_the_same_worker_twice(store: Store, clock: Clock) -> None:
    """After a worker rejects an order it is never offered that order again."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    await d.reject(WorkerId("a"), city, f"{oid}/1", "busy")
    await d.drain()
    fields = await store.order_fields(oid)
    assert fields["state"] == "dispatching" and "holders" not in fields


async def test_no_worker_ends_unassigned(store: Store, clock: Clock) -> None:
    """An order nobody can take retries, then ends unassigned after the maximum dispatch time."""
    city = scratch_city()
    d = dispatcher(store, city)
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
    city = scratch_city()
    await add_workers(store, city, "plumber", skills=("plumbing",))
    clock.ms = T0 - 120_000  # "stale" last reported two minutes ago
    await add_workers(store, city, "stale")
    clock.ms = T0
    await add_workers(store, city, "fresh")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "fresh"


async def test_status_change_refused_with_offer_or_job(store: Store, clock: Clock) -> None:
    """A worker holding an offer gets offer_pending; one holding a job gets active_job."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
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
    city = scratch_city()
    await add_workers(store, city, "gone", "here")
    await store.disconnect(city, WorkerId("gone"), NODE, "s-gone")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "here"


async def test_forget_stale_drops_only_old_positions(store: Store, clock: Clock) -> None:
    """Workers not seen within the cut-off leave the search index; fresh ones stay."""
    city = scratch_city()
    clock.ms = T0 - 60_000
    await add_workers(store, city, "old")
    clock.ms = T0
    await add_workers(store, city, "new")
    assert await store.forget_stale(city, 30_000) == 1
    members = await store.call("ZRANGE", f"d:{{{city}}}:free:delivery", 0, -1)
    assert members == [b"new"]
    assert await store.position(city, "old") is None  # forgotten
    assert await store.position(city, "new") is not None


async def test_search_looks_past_busy_nearest_workers(store: Store, clock: Clock) -> None:
    """When the nearest workers are all busy, the search reaches the free one behind them."""
    city = scratch_city()
    await add_workers(store, city, "b1", "b2", "b3", "b4", "b5", "free")
    for wid in ("b1", "b2", "b3", "b4", "b5"):
        await store.set_status(city, WorkerId(wid), "pause")
    d = dispatcher(store, city, search_count=1)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "free"


async def test_nearer_ring_wins_over_more_candidates(store: Store, clock: Clock) -> None:
    """A worker in the first radius step is chosen; the search does not widen past it."""
    city = scratch_city()
    await add_workers(store, city, "near", "far")
    await locate(store, city, {"far": (13.40, 52.535, T0)})  # ~1.7 km
    d = dispatcher(store, city, offer_mode=OfferMode.BROADCAST)
    oid = new_order_id(City(city))
    await d.create_order(oid, "cust", CreateOrder(city=city, skill="delivery",
                         pickup=Point(lat=52.52, lng=13.40)))  # fmt: skip
    await d.drain()
    assert (await store.order_fields(oid))["holders"] == "near"


async def test_accept_at_expiry_is_refused_before_the_sweeper_runs(
    store: Store, clock: Clock
) -> None:
    """An accept that reaches Redis at expires_at is offer_expired, though nothing expired
    the offer yet: the store's clock decides, not who ran first."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    exp = int((await store.order_fields(oid))["exp"])
    clock.ms = exp
    with pytest.raises(Refused) as err:
        await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert err.value.code == "offer_expired"
    clock.ms = exp - 1
    assert (await d.accept(WorkerId("a"), city, f"{oid}/1")).order_state == "assigned"


async def test_the_deadline_is_hard(store: Store, clock: Clock) -> None:
    """An offer made close to the deadline expires at the deadline, and at the deadline the
    order ends unassigned although candidates remain."""
    city = scratch_city()
    await add_workers(store, city, *[f"w{i}" for i in range(8)])
    d = dispatcher(store, city)  # offers last 10 s, the deadline is 60 s
    oid = await new_order(d, city)
    fresh = {f"w{i}": (13.40, 52.52 + i / 10_000, T0) for i in range(8)}
    for _ in range(5):  # five silent workers, one after the other: 50 s
        clock.ms = int((await store.order_fields(oid))["exp"])
        await locate(store, city, fresh)  # the others keep reporting
        await d.dispatch(oid)
    fields = await store.order_fields(oid)
    assert fields["state"] == "offered" and int(fields["exp"]) == T0 + 60_000
    clock.ms = T0 + 60_000
    await locate(store, city, fresh)
    await d.dispatch(oid)
    view = await store.order_view(oid)
    assert view is not None and view.state == "unassigned"
    assert [e.type for e in view.events[-2:]] == ["expired", "unassigned"]


async def test_candidates_on_a_dead_node_are_skipped(store: Store, clock: Clock) -> None:
    """A worker whose node is not among the live nodes is not offered the order."""
    city = scratch_city()
    await add_workers(store, city, "near")
    await store.connect(city, WorkerId("far"), "node-y", "s-far", ("delivery",), 1, 60_000)
    await store.set_status(city, WorkerId("far"), "go_available")
    await locate(store, city, {"far": (13.40, 52.53, T0)})
    d = dispatcher(store, city)
    d.live_nodes = lambda: ("node-y",)  # node-x, holding "near", stopped beating
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["holders"] == "far"


async def test_takeover_withdraws_offers_and_keeps_jobs(store: Store, clock: Clock) -> None:
    """When node-x dies, its worker with an offer loses it (expired, worker_lost, due at
    once), its worker with a job keeps the job, and both leave the search index."""
    city = scratch_city()
    await add_workers(store, city, "offered", "busy")
    d = dispatcher(store, city)
    first = await new_order(d, city)
    await d.accept(WorkerId("offered"), city, f"{first}/1")  # "offered" now has a job...
    await d.progress(WorkerId("offered"), city, first, "arrived")
    second = await new_order(d, city)  # ...and "busy" gets the next offer
    assert (await store.order_fields(second))["holders"] == "busy"
    result = await store.takeover(city, NODE)
    assert (result.workers, result.offers) == (2, 1)
    view = await store.order_view(second)
    assert view is not None and view.state == "dispatching"
    lost = view.events[-1]
    assert (lost.type, lost.reason, lost.worker) == ("expired", "worker_lost", "busy")
    assert await store.call("ZSCORE", f"d:{{{city}}}:timers", second) == str(T0).encode()
    kept = await store.worker_record(city, WorkerId("offered"))
    assert kept.jobs == (first,)
    assert await store.call("ZCARD", f"d:{{{city}}}:free:delivery") == 0
    assert await store.call("EXISTS", f"d:{{{city}}}:node:{NODE}") == 0


async def test_a_late_location_does_not_bring_a_worker_back(store: Store, clock: Clock) -> None:
    """A position written after the worker disconnected (a buffered report landing late) is
    dropped: the worker stays out of the search index."""
    city = scratch_city()
    await add_workers(store, city, "gone")
    await store.disconnect(city, WorkerId("gone"), NODE, "s-gone")
    await locate(store, city, {"gone": (13.40, 52.52, T0)})
    assert await store.call("ZCARD", f"d:{{{city}}}:free:delivery") == 0
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    assert (await store.order_fields(oid))["state"] == "dispatching"


async def test_search_index_follows_every_change(store: Store, clock: Clock) -> None:
    """free:<skill> holds a worker exactly while it is connected, available and located."""
    city = scratch_city()
    free = f"d:{{{city}}}:free:delivery"

    async def indexed() -> bool:
        return await store.call("ZSCORE", free, "w") is not None

    await connect(store, city, "w")
    assert not await indexed()  # offline
    await store.set_status(city, WorkerId("w"), "go_available")
    assert not await indexed()  # no position yet
    await locate(store, city, {"w": (13.40, 52.52, T0)})
    assert await indexed()
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    assert not await indexed()  # holds an offer
    await d.reject(WorkerId("w"), city, f"{oid}/1", "busy")
    assert await indexed()  # available again
    second = await new_order(d, city)
    await d.accept(WorkerId("w"), city, f"{second}/1")
    assert not await indexed()  # on a job
    for step in ("arrived", "started", "completed"):
        await d.progress(WorkerId("w"), city, second, step)
    assert await indexed()  # the job ended
    await store.set_status(city, WorkerId("w"), "pause")
    assert not await indexed()
    await store.set_status(city, WorkerId("w"), "go_available")
    assert await indexed()
    await store.disconnect(city, WorkerId("w"), NODE, "s-w")
    assert not await indexed()
    await locate(store, city, {"w": (13.40, 52.52, T0)})  # a report landing late
    assert not await indexed()
    await connect(store, city, "w")
    assert await indexed()  # back, at its last position (still fresh)
    clock.ms += 1
    await store.forget_stale(city, 0)  # its position goes stale and is forgotten
    assert not await indexed()
    await locate(store, city, {"w": (13.40, 52.52, T0)})  # it reports again
    assert await indexed()


async def test_ended_orders_and_departed_workers_expire(store: Store, clock: Clock) -> None:
    """An order's hash, history and tried set get the retention as TTL in the step that ends
    it; a worker's record gets it when it leaves holding nothing, and loses it on return."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city, retention_s=3600)
    oid = await new_order(d, city)
    order_keys = [
        f"d:{{{city}}}:o:{oid}",
        f"d:{{{city}}}:o:{oid}:ev",
        f"d:{{{city}}}:o:{oid}:tried",
    ]
    assert [await store.call("PTTL", k) for k in order_keys] == [-1, -1, -1]
    await d.cancel(oid, "customer", "cust")
    for key in order_keys:
        assert 3_590_000 < int(await store.call("PTTL", key)) <= 3_600_000  # type: ignore[call-overload]
    worker = f"d:{{{city}}}:w:a"
    assert await store.call("PTTL", worker) == -1
    await store.disconnect(city, WorkerId("a"), NODE, "s-a")
    assert int(await store.call("PTTL", worker)) > 0  # type: ignore[call-overload]
    await connect(store, city, "a")
    assert await store.call("PTTL", worker) == -1


async def test_event_ids_sort_even_when_the_clock_steps_back(store: Store, clock: Clock) -> None:
    """A Redis whose clock went back (a failover to a machine behind) still gives an order's
    events ids that sort in the order they happened, and ``after`` resumes past exactly the
    events seen. The history is a JSON list, not a stream (4 KB a node)."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    oid = await new_order(d, city)  # created, dispatching, offered
    clock.ms -= 5_000
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    view = await store.order_view(oid)
    assert view is not None
    got = [(e.type, e.id) for e in view.events]
    assert [t for t, _ in got] == ["created", "dispatching", "offered", "assigned"]
    assert [i for _, i in got] == [f"{T0}-{n}" for n in range(4)]
    assert view.events[-1].at == T0 - 5_000  # the event keeps the time it was recorded at
    resumed = await store.order_view(oid, after=view.events[1].id)
    assert resumed is not None and [e.type for e in resumed.events] == ["offered", "assigned"]
    assert await store.call("TYPE", keys.events(oid)) == b"list"


async def test_performance_counters_roll_over_days_and_end(store: Store, clock: Clock) -> None:
    """Counts go into the day of the script's time; the first count of a day
    drops days older than the kept 30, the 7-day window sums only its days, and
    the hash expires 30 days after its last count."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    perf = PerformanceStore(store)
    for _ in range(5):  # day 0: five offers let run out
        await locate(store, city, {"a": (13.40, 52.521, clock.ms)}, first=False)
        oid = await new_order(d, city)
        clock.ms += 11_000
        await d.dispatch(oid)
        await d.cancel(oid, "operator", "ops")
    clock.ms += 8 * DAY_MS  # day 8: one offer accepted
    await locate(store, city, {"a": (13.40, 52.521, clock.ms)}, first=False)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    (week, month), _ = await perf.figures(city, WorkerId("a"), 5)
    assert (week.expired, week.accepted, month.expired, month.accepted) == (0, 1, 5, 1)
    assert (month.acceptance, week.acceptance) == (round(1 / 6, 3), None)  # 1 < 5 samples
    key = keys.performance(city, "a")
    assert 29 * DAY_MS < cast(int, await store.call("PTTL", key)) <= 30 * DAY_MS
    clock.ms += 23 * DAY_MS  # day 31: day 0 is past the 30 kept
    await d.cancel(oid, "operator", "ops")
    await locate(store, city, {"a": (13.40, 52.521, clock.ms)}, first=False)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    fields = await store.hash_of(key)
    assert not [f for f in fields if f.startswith("x:")], fields  # day 0's counts went
    (_, month), _ = await perf.figures(city, WorkerId("a"), 1)
    assert (month.offers, month.accepted, month.expired, month.acceptance) == (2, 2, 0, 1.0)


async def test_a_cancel_on_a_stale_read_asks_to_read_again(store: Store, clock: Clock) -> None:
    """A cancel decided on a read from before a step (its count of steps done is
    behind) changes nothing and raises Stale, the store's signal to read again:
    not an error for a client. The retry through the dispatcher then cancels."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    oid = await new_order(d, city)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    seen = len(records.done_of(await store.order_fields(oid)))
    await d.progress(WorkerId("a"), city, oid, "arrived", None)
    with pytest.raises(Stale):
        await store.cancel(oid, "operator", "ops", seen)
    assert await state_of(store, oid) == "arrived"
    await d.cancel(oid, "operator", "ops")
    assert await state_of(store, oid) == "cancelled"
