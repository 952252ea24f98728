"""Orders booked for later, against a real redis-server on a hand-driven clock:
quoted at once and dispatched their lead time before the slot, held in the
accepting worker's schedule (which it stays free around) until the job begins
at its reminder time, never offered to a worker whose schedule they do not fit,
and taken back and dispatched again at once when the worker is away; then the
same over the wire, against a running server."""

from __future__ import annotations

import time
import uuid

import pytest

from protocol.catalogue import CategoryDefinition, DispatchPolicy, Step
from protocol.messages import Ack, CreateOrder, OfferMade, Point, Reminder, Slot
from server.core.errors import Refused
from server.core.ranking import Candidate
from server.services.dispatcher import Dispatcher
from server.services.overrides import Overrides
from server.store import keys
from server.store.keys import City, OrderId, WorkerId, new_order_id
from server.store.redis_store import Store
from tests.pinned import (
    NODE,
    Clock,
    add_workers,
    connect,
    dispatcher,
    locate,
    new_order,
    refusal,
    state_of,
    worker_state,
)
from tests.support import UNIT, Admin, Customer, ServerProcess, WorkerClient, scratch_city

MIN = 60_000
HOUR = 60 * MIN
LEAD, REMIND = HOUR, 30 * MIN  # the settings' defaults


async def booked(
    d: Dispatcher, city: str, start: int, minutes: int = 60, lat: float = 52.52
) -> OrderId:
    """An order by bare skill booked for ``minutes`` from ``start``."""
    oid = new_order_id(City(city))
    body = CreateOrder(city=city, skill="delivery", pickup=Point(lat=lat, lng=13.40),
                       slot=Slot(start=start, end=start + minutes * MIN))  # fmt: skip
    assert await d.create_order(oid, "cust", body) is not None
    await d.drain()
    return oid


async def fresh(store: Store, clock: Clock, city: str, *wids: str) -> None:
    """Each of ``wids`` reports where it was placed, now."""
    if not wids:
        return
    spots = {w: (13.40, 52.52 + 0.001 * (i + 1), clock.ms) for i, w in enumerate(wids)}
    await locate(store, city, spots, first=False)


async def at(d: Dispatcher, clock: Clock, ms: int, city: str, *wids: str) -> None:
    """Time moves to ``ms``; the workers report; the sweeper runs."""
    clock.ms = ms
    await fresh(d.store, clock, city, *wids)
    await d.sweep()
    await d.drain()


async def holders(store: Store, oid: OrderId) -> list[str]:
    return [w for w in (await store.order_fields(oid)).get("holders", "").split(",") if w]


async def test_a_booked_order_waits_and_is_dispatched_its_lead_before(
    store: Store, clock: Clock
) -> None:
    """Created (quoted, cancellable) at once; nobody is offered it until the slot is an
    hour away; then it dispatches like any order, and the offer says when the job is."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    slot_at = clock.ms + 3 * HOUR
    oid = await booked(d, city, slot_at)
    assert await state_of(store, oid) == "created"
    await at(d, clock, slot_at - LEAD - 1, city, "a")
    assert await state_of(store, oid) == "created"
    await at(d, clock, slot_at - LEAD, city, "a")
    assert await holders(store, oid) == ["a"]
    view = await store.order_view(oid)
    assert view is not None and view.slot == Slot(start=slot_at, end=slot_at + HOUR)
    assert [e.type for e in view.events] == ["created", "dispatching", "offered"]
    frame = (await store.worker_record(city, WorkerId("a"))).offer_frame
    assert f'"slot":{{"start":{slot_at},"end":{slot_at + HOUR}}}' in frame


async def test_an_accepted_booking_waits_in_the_schedule_and_begins_at_its_reminder(
    store: Store, clock: Clock
) -> None:
    """The worker stays available (and takes other work) until the job begins: then
    the job is one of its jobs, the order records 'reminded', and its steps run."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city)
    slot_at = clock.ms + LEAD
    oid = await booked(d, city, slot_at)
    accepted = await d.accept(WorkerId("a"), city, f"{oid}/1")
    assert (accepted.worker_state, accepted.order_state) == ("available", "assigned")
    assert accepted.job.slot is not None and accepted.job.slot.start == slot_at
    schedule = await store.hash_of(keys.schedule(city, "a"))
    assert list(schedule) == [oid]
    assert await refusal(d.progress(WorkerId("a"), city, oid, "arrived")) == "job_not_found"
    other = await new_order(d, city)  # free for other work meanwhile
    await d.accept(WorkerId("a"), city, f"{other}/1")
    for step in ("arrived", "started", "completed"):
        await d.progress(WorkerId("a"), city, other, step)
    await at(d, clock, slot_at - REMIND, city, "a")
    record = await store.worker_record(city, WorkerId("a"))
    assert (record.jobs, record.state) == ((oid,), "on_job")
    assert await store.hash_of(keys.schedule(city, "a")) == {}
    view = await store.order_view(oid)
    assert view is not None and view.events[-1].type == "reminded"
    assert view.events[-1].due_at == slot_at
    for step in ("arrived", "started", "completed"):
        await d.progress(WorkerId("a"), city, oid, step)
    assert (await state_of(store, oid), await worker_state(store, city, "a")) == (
        "completed", "available")  # fmt: skip


async def test_a_booking_goes_only_to_a_worker_whose_schedule_it_fits(
    store: Store, clock: Clock
) -> None:
    """A slot nearer in time to one the worker holds than the travel between them is
    not offered to it; one far enough apart is."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city, booking_lead_s=6 * 3600)  # each dispatched at once
    slot_at = clock.ms + 3 * HOUR
    first = await booked(d, city, slot_at, lat=52.56)
    await d.accept(WorkerId("a"), city, f"{first}/1")
    # 8.9 km south of the first: 21 minutes away at 25 km/h
    clash = await booked(d, city, slot_at + HOUR + 15 * MIN, lat=52.48)
    assert await holders(store, clash) == []
    assert await state_of(store, clash) == "dispatching"
    before = await booked(d, city, slot_at - 2 * HOUR, minutes=30)  # ends 90 min before: fits
    assert await holders(store, before) == ["a"]
    await d.reject(WorkerId("a"), city, f"{before}/1", "busy")
    later = await booked(d, city, slot_at + HOUR + 25 * MIN, lat=52.48)
    assert await holders(store, later) == ["a"]


async def test_no_offer_is_made_into_an_overlapping_slot(store: Store, clock: Clock) -> None:
    """An offer chosen from a schedule read just before the worker booked an
    overlapping slot is not made to it (nor does that count as trying it)."""
    city = scratch_city()
    await add_workers(store, city, "a")
    d = dispatcher(store, city, booking_lead_s=6 * 3600)  # each dispatched at once
    slot_at = clock.ms + LEAD
    first = await booked(d, city, slot_at)
    second = await booked(d, city, slot_at + 30 * MIN)  # a holds the first offer: not offered
    assert await holders(store, second) == []
    await d.accept(WorkerId("a"), city, f"{first}/1")
    clock.ms += 5_000  # the second's next search
    await fresh(store, clock, city, "a")
    tick = await store.tick(second, [5000], 10, 60_000, 5000, [NODE])
    made = await d._offer(second, tick, [Candidate("a", 100.0)])  # as a node that read no schedule
    assert (made.made, made.reason) == (0, "nobody")
    assert await holders(store, second) == []
    assert await store.call("SISMEMBER", keys.tried(second), "a") == 0


async def test_a_worker_away_when_its_booking_begins_loses_it_to_someone_else(
    store: Store, clock: Clock
) -> None:
    """Disconnected at the reminder: the order is taken back by the system (reason
    worker_away), never offered to it again, and offered at once to the others."""
    city = scratch_city()
    await add_workers(store, city, "a", "b", "c")
    d = dispatcher(store, city)
    slot_at = clock.ms + LEAD
    oid = await booked(d, city, slot_at)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await store.disconnect(city, WorkerId("a"), NODE, "s-a")
    await at(d, clock, slot_at - REMIND, city, "b", "c")
    fields = await store.order_fields(oid)
    assert (fields["state"], fields.get("prio"), fields.get("worker")) == ("offered", "1", None)
    assert sorted(await holders(store, oid)) == ["b", "c"]  # urgent: broadcast
    view = await store.order_view(oid)
    assert view is not None
    taken = next(e for e in view.events if e.type == "reassigned")
    assert (taken.by, taken.reason, taken.workers) == ("system", "worker_away", ["a"])
    assert await store.hash_of(keys.schedule(city, "a")) == {}
    await connect(store, city, "a")  # back, but it is never offered the order again
    assert "a" not in await holders(store, oid)


async def test_a_paused_worker_is_away_too_and_a_hand_back_clears_the_schedule(
    store: Store, clock: Clock
) -> None:
    """Paused at the reminder counts as away; handing a booked job back before it
    begins takes it out of the worker's schedule and dispatches it again."""
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
    slot_at = clock.ms + LEAD
    oid = await booked(d, city, slot_at)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await Overrides(d).hand_back(oid, WorkerId("a"), "double-booked")
    await d.drain()
    assert await store.hash_of(keys.schedule(city, "a")) == {}
    assert await holders(store, oid) == ["b"]
    await d.accept(WorkerId("b"), city, f"{oid}/2")
    await store.set_status(city, WorkerId("b"), "pause")
    await at(d, clock, slot_at - REMIND, city)
    assert (await store.order_fields(oid)).get("prio") == "1"


@pytest.mark.parametrize(
    ("start", "minutes", "wrong"),
    [(-MIN, 60, "in the future"), (HOUR, 0, "after slot.start"), (HOUR, 13 * 60, "at most 12"),
     (31 * 24 * HOUR, 60, "at most 30 days")],
)  # fmt: skip
async def test_a_slot_that_cannot_be_booked_is_refused(
    store: Store, clock: Clock, start: int, minutes: int, wrong: str
) -> None:
    """In the past, empty, too long or too far ahead: invalid_field, nothing created."""
    city = scratch_city()
    d = dispatcher(store, city)
    oid = new_order_id(City(city))
    body = CreateOrder(
        city=city,
        skill="delivery",
        pickup=Point(lat=52.52, lng=13.40),
        slot=Slot(start=clock.ms + start, end=clock.ms + start + minutes * MIN),
    )
    with pytest.raises(Refused) as refused:
        await d.create_order(oid, "cust", body)
    assert refused.value.code == "invalid_field" and wrong in refused.value.message
    assert await store.order_fields(oid) == {}


async def test_a_booked_order_cancelled_before_its_dispatch_is_forgotten(
    store: Store, clock: Clock
) -> None:
    """A customer's cancel of a booking that waits ends it and clears its timer."""
    city = scratch_city()
    d = dispatcher(store, city)
    oid = await booked(d, city, clock.ms + 5 * HOUR)
    assert await store.call("ZSCORE", keys.timers(city), oid) is not None
    await d.cancel(oid, "customer", "cust")
    assert await state_of(store, oid) == "cancelled"
    assert await store.call("ZSCORE", keys.timers(city), oid) is None


async def test_a_booked_job_over_the_wire(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Against a running server: the booking is answered at once and offered only at
    its lead time, with its slot; the accepting worker stays available and finds
    the job in ``welcome.booked`` after reconnecting; the ``reminder`` comes at the
    category's reminder time, and then the job's steps run."""
    key = f"booked-{uuid.uuid4().hex[:8]}"
    policy = DispatchPolicy(booking_lead_s=3.0 * UNIT, booking_remind_s=1.5 * UNIT)
    r = await admin.put_category(CategoryDefinition(
        key=key, name="Booked errand", skills=["delivery"], steps=[Step(name="done")],
        dispatch=policy))  # fmt: skip
    assert r.status_code == 201, r.text
    w = await WorkerClient.connect(server.ws_url, "booker", city)
    start = int(time.time() * 1000) + int(4_000 * UNIT)
    slot = {"start": start, "end": start + HOUR}
    r = await customer.create(city, skill=None, category=key, slot=slot)
    assert r.status_code == 201 and r.json()["state"] == "created", r.text
    assert r.json()["slot"] == slot
    assert not [m for m in await w.silent(0.5) if isinstance(m, OfferMade)]
    offer = await w.offer(timeout=4.0)
    assert offer.slot == Slot(**slot)
    ack = await w.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.state == "available", ack
    assert ack.job is not None and ack.job.slot == Slot(**slot)
    await w.close()
    w = await WorkerClient.connect(server.ws_url, "booker", city)
    assert [j.order_id for j in w.welcome.booked] == [offer.order_id] and not w.welcome.jobs
    reminder = await w.expect(Reminder, timeout=4.0)
    assert (reminder.job.order_id, reminder.starts_at) == (offer.order_id, start)
    done = await w.request({"type": "progress", "order_id": offer.order_id, "step": "done"})
    assert isinstance(done, Ack) and done.state == "available", done
    order = await customer.order(offer.order_id)
    assert [e["type"] for e in order["events"]][-3:] == ["assigned", "reminded", "done"]
    await w.close()


async def test_a_bad_slot_is_refused_over_http(customer: Customer, city: str) -> None:
    """A slot in the past is 400 invalid_field, naming what is wrong."""
    past = int(time.time() * 1000) - HOUR
    r = await customer.create(city, slot={"start": past, "end": past + HOUR})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_field"), r.text
    assert "future" in r.json()["message"]


async def test_a_booking_handed_back_after_it_began_begins_again_with_its_next_worker(
    store: Store, clock: Clock
) -> None:
    """Begun with one worker, handed back before its point of no return, accepted
    by another past its reminder time: it begins with the new worker at once."""
    city = scratch_city()
    await add_workers(store, city, "a", "b")
    d = dispatcher(store, city)
    slot_at = clock.ms + LEAD
    oid = await booked(d, city, slot_at)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await at(d, clock, slot_at - REMIND, city, "a", "b")
    assert (await store.worker_record(city, WorkerId("a"))).jobs == (oid,)
    await Overrides(d).hand_back(oid, WorkerId("a"), "flat tyre")
    await d.drain()
    assert await holders(store, oid) == ["b"]
    await d.accept(WorkerId("b"), city, f"{oid}/2")
    await at(d, clock, clock.ms + 1, city, "b")
    assert (await store.worker_record(city, WorkerId("b"))).jobs == (oid,)
    view = await store.order_view(oid)
    assert view is not None and [e.type for e in view.events].count("reminded") == 2
