"""Nodes are mortal: heartbeats, takeover of a dead node's workers, one session per worker
across nodes, and a node's pub/sub coming back without anything silently missed."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from protocol.messages import Ack, JobCancelled, OfferMade
from server.loops.nodes import NodeWatch
from server.store import keys
from server.store.cluster import open_link
from server.store.keys import WorkerId
from server.store.redis_store import Store
from tests.support import UNIT, Customer, ServerProcess, WorkerClient, on_cluster, redis_client

pytestmark = pytest.mark.slow


async def _node_of(redis_url: str, city: str, wid: str) -> str:
    client = redis_client(redis_url)
    node: bytes | None = await client.hget(keys.worker(city, wid), "node")  # type: ignore[assignment]
    await client.aclose()
    return (node or b"").decode()


async def test_a_dead_nodes_offers_go_elsewhere_at_once(
    server: ServerProcess, redis_url: str, city: str
) -> None:
    """SIGKILL the node holding a worker's socket and offer: within the node TTL another
    node disconnects that worker, withdraws its offer (expired, worker_lost) and the order
    is offered to a worker on a live node, long before the offer itself would expire."""
    doomed = ServerProcess(redis_url, env={"DISPATCH_OFFER_TIMEOUT_S": "30"}).start()
    near = await WorkerClient.connect(doomed.ws_url, "near", city, lat=52.5201)
    far = await WorkerClient.connect(server.ws_url, "far", city, lat=52.525)
    customer = Customer(doomed.url)  # the offer it makes lasts 30 s
    try:
        oid = (await customer.create(city)).json()["id"]
        assert (await near.offer()).order_id == oid
        doomed.kill()
        await customer.close()
        customer = Customer(server.url, customer.id)
        started = time.monotonic()
        moved_on = await far.offer(timeout=6)
        assert moved_on.order_id == oid and time.monotonic() - started < 4 * UNIT
        view = await customer.order(oid)
        lost = [e for e in view["events"] if e.get("reason") == "worker_lost"]
        assert [(e["type"], e["worker"]) for e in lost] == [("expired", "near")]
        assert await _node_of(redis_url, city, "near") == ""
        client = redis_client(redis_url)  # dropped from the registry after its cities
        deadline = time.monotonic() + 2 * UNIT
        while await client.zscore(keys.NODES, doomed.node) is not None:
            assert time.monotonic() < deadline, "the dead node stayed in the registry"
            await asyncio.sleep(0.02)
        await client.aclose()
        back = await WorkerClient.connect(server.ws_url, "near", city, status=None)
        assert back.welcome.offer is None and back.welcome.state == "available"
        await back.close()
    finally:
        await far.close()
        await customer.close()


async def test_the_newest_session_wins_across_nodes(
    server: ServerProcess, second: ServerProcess, redis_url: str, city: str
) -> None:
    """A worker that connects on node B while its socket on node A is open: A's socket is
    closed with 4409, and the worker's frames are routed to B."""
    first = await WorkerClient.connect(server.ws_url, "w", city)
    again = await WorkerClient.connect(second.ws_url, "w", city, status=None)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(first.ws.recv(), 5 * UNIT)
    assert first.ws.close_code == 4409
    assert isinstance(await again.request({"type": "ping"}), Ack)
    assert await _node_of(redis_url, city, "w") == second.node
    customer = Customer(server.url)
    await customer.create(city)
    assert isinstance(await again.offer(), OfferMade)
    await again.close()
    await customer.close()


@pytest.mark.skipif(
    on_cluster(),
    reason="starves one Redis of clients; the cluster's "
    "pub/sub failover is in store/test_cluster.py",
)
async def test_pubsub_loss_resends_the_offer_and_cancellations(redis_url: str, city: str) -> None:
    """While node A cannot reach Redis's pub/sub, an offer and a cancellation for its
    workers are published and lost; once A subscribes again it re-reads and sends both."""
    # A connection attempt made while Redis is full waits out its timeout, so A's
    # pub/sub may be back a unit or two after Redis has room again: the offer must
    # outlive that, or what arrives would be a new offer, not the lost one re-read.
    env = {"DISPATCH_OFFER_TIMEOUT_S": str(10 * UNIT), "DISPATCH_MAX_DISPATCH_S": str(20 * UNIT)}
    node_a = ServerProcess(redis_url, env=env).start()
    node_b = ServerProcess(redis_url, env=env).start()
    holder = await WorkerClient.connect(node_a.ws_url, "holder", city, lat=52.5201)
    customer = Customer(node_b.url)
    admin = redis_client(redis_url)
    job = (await customer.create(city)).json()["id"]
    await holder.accept_next()
    waiter = await WorkerClient.connect(node_a.ws_url, "waiter", city, lat=52.5202)
    inbox = keys.node_channel(city, node_a.node)

    async def listening() -> int:
        return int((await admin.pubsub_numsub(inbox))[0][1])

    try:
        connected = int((await admin.info("clients"))["connected_clients"])
        listeners = len(await admin.client_list(_type="pubsub"))  # every node's, A's too
        await admin.config_set("maxclients", connected - listeners)  # none can come back
        await admin.client_kill_filter(_type="pubsub")
        deadline = time.monotonic() + 1 * UNIT
        while await listening():
            assert time.monotonic() < deadline, "A's pub/sub stayed subscribed"
            await asyncio.sleep(0.01)
        offered = (await customer.create(city)).json()["id"]
        await customer.wait_state(offered, "offered")  # the script that offered it published
        assert (await customer.http.post(f"/v1/orders/{job}/cancel")).status_code == 200
        assert await listening() == 0  # both frames went to A's inbox with nobody there
        await admin.config_set("maxclients", 10_000)
        offer = await waiter.offer(timeout=8)
        assert offer.order_id == offered
        offers = [e for e in (await customer.order(offered))["events"] if e["type"] == "offered"]
        assert [e["offer_id"] for e in offers] == [offer.offer_id]  # the lost one, re-read
        cancelled = await holder.expect(JobCancelled, timeout=8)
        assert cancelled.order_id == job
    finally:
        await admin.config_set("maxclients", 10_000)
        await admin.aclose()
        await customer.close()
        await holder.close()
        await waiter.close()
        node_a.stop()
        node_b.stop()


async def test_a_node_restarted_under_its_id_clears_its_old_routes(
    redis_url: str, city: str
) -> None:
    """A node SIGKILLed and started again under the same node id finds workers still routed
    to it from before; it holds none of those sockets, so it disconnects them at start."""
    env = {"DISPATCH_NODE_ID": f"fixed-{city}"}
    node = ServerProcess(redis_url, env=env).start()
    w = await WorkerClient.connect(node.ws_url, "w", city)
    node.kill()
    assert await _node_of(redis_url, city, "w") == env["DISPATCH_NODE_ID"]
    again = ServerProcess(redis_url, env=env).start()
    try:
        assert await _node_of(redis_url, city, "w") == ""
        async with httpx.AsyncClient(base_url=again.url) as http:
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await w.close()
        again.stop()


async def test_malformed_node_messages_are_skipped(
    server: ServerProcess, redis_url: str, city: str
) -> None:
    """Garbage published on the node's channels (not msgpack, wrong shape, a worker id off
    its pattern) is logged and skipped: the node stays ready and still delivers offers."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    client = redis_client(redis_url)
    for junk in (
        b"not msgpack \xff\n\x00",
        b"\x93\xa5offer\xa1w\xa1x",
        b"\x94\xa5offer\xa5a b\nx\xa1o\xa2{}",
    ):
        await client.publish(keys.node_channel(city, server.node), junk)
    await client.publish(keys.order_channel(f"{city}.0123456789abcdef"), b"\xff not json")
    await client.aclose()
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/readyz")).status_code == 200
    customer = Customer(server.url)
    await customer.create(city)
    assert isinstance(await w.offer(), OfferMade)
    await customer.close()
    await w.close()


async def test_a_node_taken_over_while_alive_closes_its_sockets(
    server: ServerProcess, redis_url: str, city: str
) -> None:
    """If the other nodes declare a node dead while it still runs (it was too slow to beat),
    its workers are no longer routed: the node notices at its next beat and closes their
    sockets with 1012, and a worker that reconnects gets offers again."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    store = Store(open_link(redis_url))
    await store.takeover(city, server.node)  # what a survivor does to a dead node
    await store.forget_node(server.node)
    await store.link.aclose()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(w.ws.recv(), 5 * UNIT)
    assert w.ws.close_code == 1012
    back = await WorkerClient.connect(server.ws_url, "w", city, status=None)
    customer = Customer(server.url)
    await customer.create(city)
    assert isinstance(await back.offer(), OfferMade)
    await customer.close()
    await back.close()


async def test_a_node_back_under_its_id_keeps_its_routes(redis_url: str, city: str) -> None:
    """A survivor that judged a node dead does not take over or forget it once it has
    beaten again (restarted under its id within the TTL); one that stays dead is taken
    over and dropped from the registry."""
    store = Store(open_link(redis_url))
    back, gone = f"back-{uuid.uuid4().hex[:8]}", f"gone-{uuid.uuid4().hex[:8]}"
    try:
        await store.call_many([("ZADD", keys.NODES, 1000, back), ("ZADD", keys.NODES, 1000, gone)])
        stale_before = await store.sync_clock() - 3000
        assert await store.node_is_stale(back, stale_before)
        for wid, node in (("wb", back), ("wg", gone)):
            await store.connect(city, WorkerId(wid), node, f"s-{wid}", ("delivery",), 1, 60_000)
        await store.heartbeat(back, 3000)  # the new incarnation's first beat
        survivor = NodeWatch(store, "survivor", [city], 250, 3000)
        await survivor.take_over(back, stale_before)
        await survivor.take_over(gone, stale_before)
        assert await store.call("ZSCORE", keys.NODES, back) is not None
        assert await store.call("ZSCORE", keys.NODES, gone) is None
        assert await _node_of(redis_url, city, "wb") == back
        assert await _node_of(redis_url, city, "wg") == ""
    finally:
        await store.forget_node(back)
        await store.disconnect(city, WorkerId("wb"), back, "s-wb")
        await store.link.aclose()


async def test_a_beat_does_not_wait_behind_a_crowded_link(redis_url: str) -> None:
    """The heartbeat goes over its own link: with the main link stuck behind a slow
    call (as during a shard's failover), the node still beats on time."""
    if on_cluster():
        pytest.skip("a blocking call on the cluster link holds one connection only")
    main = Store(open_link(redis_url, 5.0, 5.0))
    beats = Store(open_link(redis_url, 5.0, 5.0))
    watch = NodeWatch(main, f"n-{uuid.uuid4().hex[:8]}", [], 100, 1000, beats=beats)
    stuck = asyncio.ensure_future(main.call("BLPOP", f"d:stuck:{uuid.uuid4().hex}", 2 * UNIT))
    client = redis_client(redis_url)
    deadline = time.monotonic() + 1 * UNIT
    while not any(c["cmd"] == "blpop" for c in await client.client_list()):
        assert time.monotonic() < deadline, "the slow call never reached Redis"
        await asyncio.sleep(0.01)  # the main link now waits behind it
    await client.aclose()
    started = time.monotonic()
    async with asyncio.timeout(1.0 * UNIT):
        await watch.beat()
    assert time.monotonic() - started < 1.0 * UNIT and watch.beating and not stuck.done()
    await stuck
    await watch.leave()
    await main.link.aclose()
    await beats.link.aclose()


async def test_a_node_whose_own_beats_were_held_up_does_not_judge_others(
    redis_url: str,
) -> None:
    """A beat that comes more than the node TTL after the one before (a failover held
    every call up, without failing any) starts the judge's healthy run over: the
    other node, whose beats were held up as well, is not taken over."""
    store = Store(open_link(redis_url, 5.0, 5.0))
    ttl_ms = 1000
    judge = NodeWatch(store, f"judge-{uuid.uuid4().hex[:8]}", [], 100, ttl_ms)
    other = f"other-{uuid.uuid4().hex[:8]}"
    await judge.beat()
    judge.healthy_since = time.monotonic() - 10  # long healthy, as far as it knows
    judge.last_beat = time.monotonic() - 2 * ttl_ms / 1000  # but its last beat is old
    client = redis_client(redis_url)
    stale = await store.sync_clock() - 5 * ttl_ms
    await client.zadd(keys.NODES, {other: stale})
    await judge.beat()
    assert await client.zscore(keys.NODES, other) == stale, "taken over by a stalled judge"
    judge.healthy_since = time.monotonic() - 10  # a judge healthy all along does take it
    await judge.beat()
    assert await client.zscore(keys.NODES, other) is None
    await judge.leave()
    await client.aclose()
    await store.link.aclose()
