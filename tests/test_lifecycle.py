"""The whole order lifecycle against a real server, in both offer modes."""

from __future__ import annotations

from protocol.messages import Ack, OfferWithdrawn
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
