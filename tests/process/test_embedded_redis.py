"""``dispatch serve`` with no REDIS_URL: a private Redis that survives a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import UNIT, Customer, ServerProcess, unique_city

pytestmark = pytest.mark.slow


async def redis_gone(path: Path, timeout: float = 5.0) -> bool:
    """Whether the redis-server on ``path`` stops answering within ``timeout`` units."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * UNIT
    while loop.time() < deadline:
        try:
            _reader, writer = await asyncio.open_unix_connection(str(path))
        except OSError:
            return True
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
    return False


def private_server(data_dir: Path, port: int | None = None) -> ServerProcess:
    proc = ServerProcess("", {"DISPATCH_DATA_DIR": str(data_dir)})
    if port:
        proc.port, proc.url = port, f"http://127.0.0.1:{port}"
        proc.env["DISPATCH_PORT"] = str(port)
    return proc.start()


async def test_private_redis_keeps_orders_across_a_sigkill(tmp_path: Path) -> None:
    """An order made on a server with a private Redis is still there after a SIGKILL and restart."""
    first = private_server(tmp_path)
    customer = Customer(first.url, "c-durable")
    oid = (await customer.create(unique_city())).json()["id"]
    await customer.close()
    first.kill()
    assert await redis_gone(tmp_path / "redis.sock"), "the private redis outlived its server"
    second = private_server(tmp_path, first.port)
    customer = Customer(second.url, "c-durable")
    data = await customer.order(oid)
    assert data["id"] == oid and data["events"][0]["type"] == "created"
    await customer.close()
    second.stop()
    assert await redis_gone(tmp_path / "redis.sock")
