"""One clock: a node whose own clock is an hour off still decides by Redis time.

The node runs with its wall clock (``time.time``) moved an hour ahead, by a
``sitecustomize`` module on its ``PYTHONPATH``; nothing of the server reads
that clock to decide. Its offers expire at Redis time plus the offer timeout,
it takes a phone's fix stamped with the real time, its ``server_time`` is the
real time, and tokens valid now are valid to it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from protocol.messages import Ack
from tests.support import UNIT, Customer, ServerProcess, WorkerClient, unique_city

SKEW_S = 3600
SITE = f"""
import time
_real = time.time
time.time = lambda: _real() + {SKEW_S}
_real_ns = time.time_ns
time.time_ns = lambda: _real_ns() + {SKEW_S} * 1_000_000_000
"""


async def test_a_node_an_hour_ahead_decides_by_redis_time(redis_url: str, tmp_path: Path) -> None:
    """Offers, fixes, server_time and tokens follow Redis time, not the node's clock."""
    (tmp_path / "sitecustomize.py").write_text(SITE)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    node = ServerProcess(redis_url, env={"PYTHONPATH": path}).start()
    city = unique_city()
    customer = Customer(node.url)
    try:
        w = await WorkerClient.connect(node.ws_url, "w", city)  # real-time fix: accepted
        pong = await w.request({"type": "ping"})
        assert isinstance(pong, Ack) and pong.server_time is not None
        assert abs(pong.server_time - time.time() * 1000) < 2000
        created = await customer.create(city)
        assert created.status_code == 201
        assert abs(created.json()["created_at"] - time.time() * 1000) < 2000
        offer = await w.offer()
        timeout_ms = 1000 * UNIT  # the test nodes' offer_timeout_s
        assert abs(offer.expires_at - (time.time() * 1000 + timeout_ms)) < 1000
        await w.close()
    finally:
        await customer.close()
        node.stop()
