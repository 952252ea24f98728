"""The script engine (``server/store/engine.py``) against a real redis-server:
scripts Redis forgot are loaded again, and an unreachable Redis is the
store's own error."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from server.store.engine import StoreUnavailable
from server.store.keys import WorkerId
from server.store.mux import Mux
from server.store.redis_store import Store
from tests.support import on_cluster, scratch_city

pytestmark = pytest.mark.skipif(on_cluster(), reason="tests of the engine over one Redis")


async def test_store_reloads_scripts_redis_forgot(redis_url: str) -> None:
    """After SCRIPT FLUSH the store loads the script again and the call succeeds."""
    client = aioredis.from_url(redis_url)
    store = Store(Mux(redis_url))
    city = scratch_city()
    await store.connect(city, WorkerId("w"), "n", "s", ("delivery",), 1, 60_000)
    await client.script_flush()
    assert await store.set_status(city, WorkerId("w"), "go_available") == "available"
    store.link.close()
    await client.aclose()


async def test_unreachable_redis_is_store_unavailable() -> None:
    """A Redis that cannot be reached surfaces as StoreUnavailable from the store."""
    store = Store(Mux("redis://127.0.0.1:1"))
    with pytest.raises(StoreUnavailable):
        await store.set_status("x", WorkerId("w"), "go_available")
