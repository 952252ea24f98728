"""Every key ends: after orders reach every terminal state and their workers leave, each key
left in Redis (the whole keyspace, not a list we keep) has a time to live."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from protocol.messages import Ack
from server.store import keys
from server.store.catalogue import KEEP_VERSIONS
from server.store.scripts import PERF_DAYS
from tests.support import UNIT, Customer, RedisProcess, ServerProcess, WorkerClient, unique_city

pytestmark = pytest.mark.slow

RETENTION_S = 600
FAR_LAT, FAR_LNG = 10.0, 10.0  # nobody works there: orders stay unassigned


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    redis = RedisProcess(tmp_path / "redis", appendonly=False)
    yield redis.start()
    redis.stop()


async def _to_state(w: WorkerClient, customer: Customer, city: str, steps: list[str]) -> str:
    oid = str((await customer.create(city)).json()["id"])
    assert await w.accept_next() == oid
    for step in steps:
        assert isinstance(await w.request({"type": "progress", "order_id": oid, "step": step}), Ack)
    return oid


async def test_every_key_left_behind_has_a_ttl(own_redis: str) -> None:
    """Orders completed, cancelled from every state that allows it, and unassigned; an
    Idempotency-Key; a live follower; workers that leave; a node that stops. Then every key
    in Redis has a TTL, none longer than the retention or the idempotency TTL (but a
    worker's performance counters, kept their 30 days)."""
    city = unique_city()
    env = {"DISPATCH_RETENTION_S": str(RETENTION_S), "DISPATCH_MAX_DISPATCH_S": str(1.5 * UNIT),
           "DISPATCH_LOCATION_MAX_AGE_S": str(2 * UNIT)}  # fmt: skip
    node = ServerProcess(own_redis, env=env).start()
    customer = Customer(node.url)
    a = await WorkerClient.connect(node.ws_url, "a", city)
    try:
        await _to_state(a, customer, city, ["arrived", "started", "completed"])
        for steps in ([], ["arrived"]):  # cancelled when assigned, when arrived
            oid = await _to_state(a, customer, city, steps)
            assert (await customer.http.post(f"/v1/orders/{oid}/cancel")).status_code == 200
        oid = (await customer.create(city)).json()["id"]
        await a.offer()
        live = await customer.live(oid)
        await customer.http.post(f"/v1/orders/{oid}/cancel")  # cancelled while offered
        assert await live.closed() == 1000
        far = (await customer.create(city, FAR_LAT, FAR_LNG, key="idem-1")).json()["id"]
        await customer.http.post(f"/v1/orders/{far}/cancel")  # cancelled while dispatching
        lonely = (await customer.create(city, FAR_LAT, FAR_LNG)).json()["id"]
        await customer.wait_state(lonely, "unassigned", timeout=5)
    finally:
        await a.close()
        await customer.close()
    client = aioredis.from_url(own_redis)
    # The departed worker's position lasts until it is too old to be a candidate: the
    # running node forgets it then. The node registry ends when the node stops.
    for _ in range(int(10 * UNIT / 0.2)):
        if await _endless(client) in ([], [f"{keys.NODES} (zset)"]):
            break
        await asyncio.sleep(0.2)
    node.stop()
    endless = await _endless(client)
    ttls = {k: await client.pttl(k) async for k in client.scan_iter(count=1000)}
    # a worker's performance counters are kept for their 30 days; the rest far shorter
    perf = {k: t for k, t in ttls.items() if b":perf:" in k}
    longest = max(t for k, t in ttls.items() if k not in perf)
    await _catalogue_is_bounded(client)
    count = await client.dbsize()
    await client.aclose()
    assert count > 10, "the run should have left records behind"
    assert endless == []
    assert longest <= 86_400 * 1000  # the idempotency TTL; records get RETENTION_S
    assert perf and max(perf.values()) <= PERF_DAYS * 86_400 * 1000


async def _endless(client: aioredis.Redis) -> list[str]:
    """The keys without a time to live, with their types; but the catalogue, which
    is configuration (bounded: :func:`_catalogue_is_bounded`)."""
    found = []
    async for key in client.scan_iter(count=1000):
        if key.startswith(keys.CATALOGUE.encode()):
            continue
        if await client.pttl(key) < 0:
            kind: bytes = await client.type(key)  # type: ignore[assignment]
            found.append(f"{key.decode()} ({kind.decode()})")
    return sorted(found)


async def _catalogue_is_bounded(client: aioredis.Redis) -> None:
    """The catalogue's keys are configuration: per category its hash and a history
    of at most its last KEEP_VERSIONS versions, plus the key set and the counter."""
    names = {k.decode() async for k in client.scan_iter(match=f"{keys.CATALOGUE}*")}
    categories = {n for n in names if n.startswith(keys.category("")) and ":v" not in n[-2:]}
    assert len(categories) == 4 and len(names) <= 2 * len(categories) + 2, sorted(names)
    for name in names:
        if name.endswith(":v"):
            assert await client.hlen(name) <= KEEP_VERSIONS
