"""Several server processes on one Redis, and a process killed with SIGKILL."""

from __future__ import annotations

import pytest

from protocol.messages import Ack, EventHappened, OfferWithdrawn, Snapshot
from tests.support import Customer, ServerProcess, WorkerClient

pytestmark = pytest.mark.slow


async def test_offer_and_events_cross_nodes(
    server: ServerProcess, second: ServerProcess, city: str
) -> None:
    """A worker on node A gets an order created on node B; a customer on B sees what A did."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    customer = Customer(second.url)
    oid = (await customer.create(city)).json()["id"]
    live = await customer.live(oid)
    assert isinstance(await live.next_frame(), Snapshot)
    offer = await w.offer()
    assert offer.order_id == oid
    assert isinstance(await w.request({"type": "accept", "offer_id": offer.offer_id}), Ack)
    event = await live.next_frame()
    while not (isinstance(event, EventHappened) and event.event.type == "assigned"):
        event = await live.next_frame()
    assert event.event.worker == "w"
    await live.close()
    await customer.close()
    await w.close()


async def test_sigkill_loses_no_offer_and_worker_gets_it_back(
    server: ServerProcess, redis_url: str, city: str
) -> None:
    """Killing the node that made an offer: the worker, reconnecting elsewhere, gets the offer;
    unanswered, it still times out and moves on to the next worker."""
    doomed = ServerProcess(redis_url).start()
    near = await WorkerClient.connect(doomed.ws_url, "near", city, lat=52.5201, lng=13.401)
    far = await WorkerClient.connect(server.ws_url, "far", city, lat=52.525, lng=13.401)
    customer = Customer(doomed.url)
    oid = (await customer.create(city)).json()["id"]
    offer = await near.offer()
    doomed.kill()
    back = await WorkerClient.connect(server.ws_url, "near", city, status=None)
    assert back.welcome.state == "offered" and back.welcome.offer == offer
    gone = await back.expect(OfferWithdrawn, timeout=4)
    assert (gone.offer_id, gone.reason) == (offer.offer_id, "expired")
    moved_on = await far.offer(timeout=4)
    assert moved_on.order_id == oid
    await back.close()
    await far.close()
    await near.close()
    await customer.close()


async def test_sigkill_keeps_the_job(server: ServerProcess, redis_url: str, city: str) -> None:
    """A worker whose node dies during a job gets the job back from another node."""
    doomed = ServerProcess(redis_url).start()
    w = await WorkerClient.connect(doomed.ws_url, "w", city)
    customer = Customer(server.url)
    oid = (await customer.create(city)).json()["id"]
    assert await w.accept_next() == oid
    doomed.kill()
    back = await WorkerClient.connect(server.ws_url, "w", city, status=None)
    assert back.welcome.state == "on_job"
    assert [j.order_id for j in back.welcome.jobs] == [oid]
    ack = await back.request({"type": "progress", "order_id": oid, "step": "arrived"})
    assert isinstance(ack, Ack)
    assert (await customer.order(oid))["state"] == "arrived"
    await back.close()
    await w.close()
    await customer.close()
