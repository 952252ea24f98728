"""The multiplexed Redis connection, against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.store.engine import StoreUnavailable
from server.store.keys import WorkerId
from server.store.mux import Mux, MuxClosed, MuxTimeout, ReplyError
from server.store.redis_store import Store
from tests.support import UNIT, RedisProcess, on_cluster, redis_client

pytestmark = pytest.mark.skipif(on_cluster(), reason="tests of the connection to one Redis")


async def test_many_concurrent_calls_get_their_own_replies(redis_url: str) -> None:
    """Hundreds of pipelined calls in flight each get the reply to their own command."""
    mux = Mux(redis_url)
    replies = await asyncio.gather(*(mux.call("ECHO", f"m{i}") for i in range(500)))
    assert replies == [f"m{i}".encode() for i in range(500)]
    mux.close()


async def test_cancelled_caller_does_not_shift_replies(redis_url: str) -> None:
    """A caller cancelled while waiting leaves the replies of later callers in place."""
    mux = Mux(redis_url)
    slow = asyncio.ensure_future(mux.call("BLPOP", "mux-test-empty-list", str(1 * UNIT)))
    client = redis_client(redis_url)
    async with asyncio.timeout(1 * UNIT):  # the call is on the wire: its reply will come
        while not any(c["cmd"] == "blpop" for c in await client.client_list()):
            await asyncio.sleep(0.01)
    await client.aclose()
    slow.cancel()
    assert await mux.call("ECHO", "after") == b"after"
    mux.close()


async def test_error_reply_is_returned(redis_url: str) -> None:
    """A Redis error comes back as a ReplyError value, and the connection stays usable."""
    mux = Mux(redis_url)
    reply = await mux.call("NOSUCHCOMMAND")
    assert isinstance(reply, ReplyError)
    assert await mux.call("PING") == b"PONG"
    mux.close()


async def test_reconnects_after_the_connection_is_killed(redis_url: str) -> None:
    """When Redis drops the connection, a call waiting on it fails (or, if the close
    came while none was, the next one connects again) and later calls work."""
    mux = Mux(redis_url)
    my_id = await mux.call("CLIENT", "ID")
    admin = aioredis.from_url(redis_url)
    try:
        await admin.client_kill_filter(_id=my_id)
        failed = False
        for _ in range(100):  # the close reaches us within a few calls
            try:
                await mux.call("PING")
            except MuxClosed:
                failed = True
                break
            if mux.connects > 1:
                break
        assert failed or mux.connects > 1, "the killed connection was never noticed"
        assert await mux.call("PING") == b"PONG"
        assert mux.connects == 2
    finally:
        await admin.aclose()
        mux.close()


async def test_password_and_database_from_the_url(redis_url: str, tmp_path: Path) -> None:
    """A URL's password and database number are used: AUTH, then SELECT."""
    secured = RedisProcess(tmp_path, appendonly=False)
    secured_url = secured.start()
    admin = aioredis.from_url(secured_url)
    await admin.config_set("requirepass", "s3cret")
    path = secured_url.removeprefix("unix://")
    mux = Mux(f"unix://:s3cret@{path}?db=3")
    await mux.call("SET", "k", "v")
    assert await mux.call("GET", "k") == b"v"
    assert await admin.get("k") is None  # it went to database 3, not 0
    locked = Mux(f"unix://{path}")
    with pytest.raises(StoreUnavailable):
        await Store(locked).set_status("x", WorkerId("w"), "go_available")
    mux.close()
    await admin.aclose()
    secured.stop()


async def test_a_silent_redis_fails_waiting_calls_within_the_deadline(tmp_path: Path) -> None:
    """With Redis SIGSTOPped, waiting calls fail with MuxTimeout soon after the deadline, the
    connection is dropped, and once Redis answers again the next call reconnects."""
    redis = RedisProcess(tmp_path, appendonly=False)
    mux = Mux(redis.start(), timeout_s=0.5, connect_timeout_s=0.5)
    try:
        assert await mux.call("PING") == b"PONG"
        redis.pause()
        started = time.monotonic()
        calls = [asyncio.ensure_future(mux.call("PING")) for _ in range(20)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        took = time.monotonic() - started
        assert all(isinstance(r, MuxTimeout) for r in results), results
        assert took < 1.5 and mux.timeouts == 1 and not mux.connected
        redis.resume()
        assert await mux.call("PING") == b"PONG"
    finally:
        redis.resume()
        mux.close()
        redis.stop()


async def test_a_handshake_that_never_completes_times_out() -> None:
    """A server that accepts the connection but never answers AUTH: the call fails with
    MuxClosed after the connect deadline instead of waiting for ever."""
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mux = Mux(f"redis://:secret@127.0.0.1:{port}", timeout_s=0.5, connect_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(MuxClosed):
        await mux.call("PING")
    assert time.monotonic() - started < 1.5
    mux.close()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
