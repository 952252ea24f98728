"""Customers following an order live: snapshot, resume, events, worker positions."""

from __future__ import annotations

from protocol.messages import EventHappened, Position, Snapshot, WorkerMoved
from tests.support import Customer, ServerProcess, WorkerClient


async def test_live_snapshot_events_positions_and_close(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """The live socket sends a snapshot, each later event once, positions, then closes (1000)."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    oid = (await customer.create(city)).json()["id"]
    offer = await w.offer()
    live = await customer.live(oid)
    snap = await live.next_frame()
    assert isinstance(snap, Snapshot) and snap.order.state == "offered"
    await w.request({"type": "accept", "offer_id": offer.offer_id})
    await w.move(52.5211, 13.4011)
    seen: list[str] = []
    moved: list[Position] = []
    # A position is published with the next ingest flush, an event at once: wait
    # for the position before the steps, or the socket may close before it comes.
    while not moved:
        frame = await live.next_frame()
        if isinstance(frame, EventHappened):
            seen.append(frame.event.type)
        elif isinstance(frame, WorkerMoved):
            moved.append(frame.position)
    for step in ("arrived", "started", "completed"):
        await w.request({"type": "progress", "order_id": oid, "step": step})
    while not seen or seen[-1] != "completed":
        frame = await live.next_frame()
        if isinstance(frame, EventHappened):
            seen.append(frame.event.type)
        elif isinstance(frame, WorkerMoved):
            moved.append(frame.position)
    assert seen == ["assigned", "arrived", "started", "completed"]
    assert moved and moved[0].worker == "w" and abs(moved[0].lat - 52.5211) < 1e-9
    assert await live.closed() == 1000
    await w.close()


async def test_resume_after_last_seen_event(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """Reconnecting with ``after`` replays exactly the events after that one."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    oid = (await customer.create(city)).json()["id"]
    offer = await w.offer()
    events = (await customer.order(oid))["events"]
    await w.request({"type": "accept", "offer_id": offer.offer_id})
    await w.request({"type": "progress", "order_id": oid, "step": "arrived"})
    live = await customer.live(oid, after=events[-1]["id"])
    snap = await live.next_frame()
    assert isinstance(snap, Snapshot)
    assert [e.type for e in snap.order.events] == ["assigned", "arrived"]
    await live.close()
    await w.close()


async def test_live_refuses_strangers(server: ServerProcess, customer: Customer, city: str) -> None:
    """Another customer's live socket gets order_not_found and is closed."""
    oid = (await customer.create(city)).json()["id"]
    stranger = Customer(server.url)
    live = await stranger.live(oid)
    frame = await live.next_frame()
    assert getattr(frame, "code", None) == "order_not_found"
    assert await live.closed() == 4404
    await stranger.close()


async def test_finished_order_snapshot_then_close(customer: Customer, city: str) -> None:
    """Following an order that already ended gives its snapshot and a normal close."""
    oid = (await customer.create(city)).json()["id"]
    await customer.http.post(f"/v1/orders/{oid}/cancel")
    live = await customer.live(oid)
    snap = await live.next_frame()
    assert isinstance(snap, Snapshot) and snap.order.state == "cancelled"
    assert await live.closed() == 1000
