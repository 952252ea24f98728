"""The whole order lifecycle against a real server, in both offer modes."""

from __future__ import annotations

from protocol.messages import (
    Ack,
    Error,
    EventHappened,
    JobCancelled,
    OfferMade,
    OfferWithdrawn,
    Snapshot,
)
from tests.support import Customer, ServerProcess, WorkerClient


async def test_sequential_lifecycle_to_completion(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """An order is offered to the nearest worker, accepted and completed, each step recorded."""
    near = await WorkerClient.connect(server.ws_url, "w-near", city, lat=52.5201, lng=13.4011)
    far = await WorkerClient.connect(server.ws_url, "w-far", city, lat=52.53, lng=13.41)
    r = await customer.create(city)
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    offer = await near.offer()
    assert offer.order_id == oid
    await near.send({"type": "offer_received", "offer_id": offer.offer_id})
    ack = await near.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.job is not None and ack.job.order_id == oid
    for step in ("arrived", "started", "completed"):
        reply = await near.request({"type": "progress", "order_id": oid, "step": step})
        assert isinstance(reply, Ack), reply
    data = await customer.wait_state(oid, "completed")
    types = [e["type"] for e in data["events"]]
    assert types == ["created", "dispatching", "offered", "assigned", "arrived", "started",
                     "completed"]  # fmt: skip
    assert data["worker"] == "w-near"
    assert not [m for m in await far.silent(0.2) if not isinstance(m, Ack)]
    await near.close()
    await far.close()


async def test_broadcast_first_accept_wins(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """A broadcast offer reaches the top K; the first accept wins and the others are told."""
    workers = [
        await WorkerClient.connect(server.ws_url, f"w{i}", city, lat=52.52 + i * 0.001, lng=13.40)
        for i in range(3)
    ]
    r = await customer.create(city, mode="broadcast")
    oid = r.json()["id"]
    offers = [await w.offer() for w in workers]
    assert len({o.offer_id for o in offers}) == 1
    ack = await workers[1].request({"type": "accept", "offer_id": offers[1].offer_id})
    assert isinstance(ack, Ack)
    for w in (workers[0], workers[2]):
        gone = await w.expect(OfferWithdrawn)
        assert gone.reason == "taken" and gone.order_id == oid
    data = await customer.wait_state(oid, "assigned")
    assert data["worker"] == "w1"
    for w in workers:
        await w.close()


async def test_reject_moves_to_next_worker(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """A rejected sequential offer goes to the next candidate, never back to the first."""
    a = await WorkerClient.connect(server.ws_url, "a", city, lat=52.5201, lng=13.401)
    b = await WorkerClient.connect(server.ws_url, "b", city, lat=52.525, lng=13.401)
    oid = (await customer.create(city)).json()["id"]
    first = await a.offer()
    assert isinstance(await a.request({"type": "reject", "offer_id": first.offer_id}), Ack)
    second = await b.offer()
    assert second.order_id == oid and second.offer_id != first.offer_id
    await b.request({"type": "reject", "offer_id": second.offer_id, "reason": "too_far"})
    assert not [m for m in await a.silent(0.3) if isinstance(m, OfferMade)]
    data = await customer.order(oid)
    assert [e["type"] for e in data["events"]][-2:] == ["offered", "rejected"]
    await a.close()
    await b.close()


async def test_timeout_moves_to_next_worker(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """An offer left unanswered expires: its holder is told and the next candidate gets it."""
    a = await WorkerClient.connect(server.ws_url, "a", city, lat=52.5201, lng=13.401)
    b = await WorkerClient.connect(server.ws_url, "b", city, lat=52.525, lng=13.401)
    oid = (await customer.create(city)).json()["id"]
    first = await a.offer()
    gone = await a.expect(OfferWithdrawn, timeout=3)
    assert (gone.offer_id, gone.reason) == (first.offer_id, "expired")
    second = await b.offer(timeout=3)
    assert second.order_id == oid
    late = await a.request({"type": "accept", "offer_id": first.offer_id})
    assert isinstance(late, Error) and late.code == "offer_expired"
    await a.close()
    await b.close()


async def test_nobody_near_ends_unassigned_and_customer_is_told(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """With nobody in range the order retries, ends unassigned, and the customer sees it live."""
    far = await WorkerClient.connect(server.ws_url, "far", city, lat=52.70, lng=13.40)
    oid = (await customer.create(city)).json()["id"]
    live = await customer.live(oid)
    snapshot = await live.next_frame()
    assert isinstance(snapshot, Snapshot) and snapshot.order.state == "dispatching"
    event = await live.next_frame(timeout=6)
    assert isinstance(event, EventHappened) and event.event.type == "unassigned"
    await live.closed()
    await far.close()


async def test_worker_disconnect_keeps_offer_until_reconnect(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """A worker that drops while holding an offer gets it back in welcome and can still accept."""
    a = await WorkerClient.connect(server.ws_url, "a", city)
    oid = (await customer.create(city)).json()["id"]
    offer = await a.offer()
    await a.close()
    again = await WorkerClient.connect(server.ws_url, "a", city, status=None)
    assert again.welcome.state == "offered" and again.welcome.offer == offer
    ack = await again.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.job is not None
    await again.close()
    back = await WorkerClient.connect(server.ws_url, "a", city, status=None)
    assert back.welcome.state == "on_job" and [j.order_id for j in back.welcome.jobs] == [oid]
    await back.close()


async def test_going_offline_during_a_job_is_refused(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """A worker on a job cannot go offline; the job stays and completes normally."""
    a = await WorkerClient.connect(server.ws_url, "a", city)
    oid = (await customer.create(city)).json()["id"]
    assert await a.accept_next() == oid
    refused = await a.request({"type": "status", "status": "offline"})
    assert isinstance(refused, Error) and refused.code == "active_job"
    for step in ("arrived", "started", "completed"):
        await a.request({"type": "progress", "order_id": oid, "step": step})
    ok = await a.request({"type": "status", "status": "offline"})
    assert isinstance(ok, Ack) and ok.state == "offline"
    await a.close()


async def test_customer_cancel_tells_the_assigned_worker(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """Cancelling an assigned order sends job_cancelled to its worker and frees it."""
    a = await WorkerClient.connect(server.ws_url, "a", city)
    oid = (await customer.create(city)).json()["id"]
    assert await a.accept_next() == oid
    r = await customer.http.post(f"/v1/orders/{oid}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    cancelled = await a.expect(JobCancelled)
    assert cancelled.order_id == oid
    late = await a.request({"type": "progress", "order_id": oid, "step": "arrived"})
    assert isinstance(late, Error) and late.code == "job_not_found"  # PROTOCOL.md §11
    again = await customer.http.post(f"/v1/orders/{oid}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "not_cancellable"
    await a.close()
