"""``dispatch serve --workers N``: N nodes on one port, one Redis, supervised."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import UNIT, Customer, ServerProcess, WorkerClient, unique_city

pytestmark = pytest.mark.slow

TOKEN = "fleet-metrics-token-0123456789abcdef"


def _nodes_answering(url: str, tries: int = 40) -> set[str]:
    """The node ids behind the port, each /readyz on a new connection."""
    seen = set()
    for _ in range(tries):
        r = httpx.get(f"{url}/readyz", timeout=2)
        if r.status_code == 200:
            seen.add(str(r.json()["node"]))
    return seen


def _children(fleet: ServerProcess) -> list[psutil.Process]:
    assert fleet.proc is not None
    return [p for p in psutil.Process(fleet.proc.pid).children() if "server.cli" in p.cmdline()]


def _fleet_metrics(url: str, city: str) -> tuple[set[str], float]:
    """From one scrape of the port: the nodes named, and the orders created in
    ``city`` summed over them."""
    r = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 200, r.text
    nodes, created = set(), 0.0
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name == "dispatch_node_info":
                nodes.add(s.labels["node"])
            if s.name == "dispatch_orders_total" and s.labels["city"] == city:
                created += s.value if s.labels["outcome"] == "created" else 0
    return nodes, created


async def _until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s * UNIT
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_nodes_share_the_port_and_a_dead_one_comes_back(redis_url: str) -> None:
    """Both nodes answer on the port; an order made through one is offered to a worker
    on whichever; a SIGKILLed node process is started again as a new node; SIGTERM
    stops them all cleanly."""
    fleet = ServerProcess(redis_url, env={"DISPATCH_METRICS_TOKEN": TOKEN},
                          args=["--workers", "2"])  # fmt: skip
    fleet.start()
    try:
        await _until(lambda: len(_children(fleet)) == 2, 10)
        first = _nodes_answering(fleet.url)
        assert len(first) == 2
        city = unique_city()
        w = await WorkerClient.connect(fleet.ws_url, "fw", city)
        customer = Customer(fleet.url)
        try:
            order = (await customer.create(city)).json()["id"]
            assert await w.accept_next() == order
            await customer.wait_state(order, "assigned")
        finally:
            await w.close()
            await customer.close()
        # Each node writes its figures for the others every second: one scrape names both.
        await _until(lambda: _fleet_metrics(fleet.url, city) == (first, 1), 10)
        victim = _children(fleet)[0]
        victim.kill()
        await _until(lambda: len(_nodes_answering(fleet.url, 10) - first) == 1, 20)
        assert len(_children(fleet)) == 2
    finally:
        children = _children(fleet)
        assert fleet.proc is not None
        fleet.proc.send_signal(signal.SIGTERM)
        assert fleet.proc.wait(timeout=20) == 0
        assert not [c for c in children if c.is_running() and c.status() != "zombie"]


async def test_the_nodes_share_the_private_redis(tmp_path: Path) -> None:
    """Without REDIS_URL the parent starts one Redis for all: an order made through
    one node is read through every other."""
    env = {"REDIS_URL": "", "DISPATCH_DATA_DIR": str(tmp_path / "data")}
    fleet = ServerProcess("", env=env, args=["--workers", "2"]).start()
    customer = Customer(fleet.url)
    try:
        assert len(_nodes_answering(fleet.url)) == 2
        order = (await customer.create(unique_city())).json()["id"]
        for _ in range(20):  # a new connection each: both nodes answer some
            async with httpx.AsyncClient(base_url=fleet.url, headers=customer.http.headers) as h:
                assert (await h.get(f"/v1/orders/{order}")).status_code == 200
    finally:
        await customer.close()
        fleet.stop()
    assert fleet.proc is not None and fleet.proc.returncode == 0
