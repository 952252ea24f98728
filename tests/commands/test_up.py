"""``dispatch up``: a local Redis Cluster, nodes and haproxy, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from protocol.messages import Ack
from server.commands.up import TEMPLATE, haproxy_config
from tests.support import SECRET, UNIT, Customer, WorkerClient, free_port, repo_root

pytestmark = pytest.mark.slow


def test_the_balancer_config_is_the_shipped_one_for_these_nodes() -> None:
    config = haproxy_config(TEMPLATE.read_text(), 18080, [9001, 9002, 9003], maxconn=5000)
    lines = [line.strip() for line in config.splitlines()]
    assert "bind 127.0.0.1:18080" in lines and "maxconn 5000" in lines
    servers = [line for line in lines if line.startswith("server ")]
    assert servers == [f"server node{i} 127.0.0.1:{9000 + i} check" for i in (1, 2, 3)]
    assert "option httpchk GET /readyz" in lines  # the rest as shipped
    with pytest.raises(ValueError):
        haproxy_config("frontend x\n    bind :1\n", 1, [2])


def test_without_haproxy_it_says_how_to_install_it(tmp_path: Path) -> None:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "haproxy").exists())  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "up", "--data-dir", str(tmp_path)],
        env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "apt install haproxy" in out.stderr and "--no-balancer" in out.stderr


async def test_up_serves_through_the_balancer_until_interrupted(tmp_path: Path) -> None:
    """Orders and offers go through haproxy to nodes on a Redis Cluster; SIGINT (Ctrl-C)
    stops the balancer, the nodes and every Redis, and the command exits 0."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt install haproxy) to run dispatch up")
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up", "--nodes", "2", "--port", str(port),
         "--data-dir", str(tmp_path)],
        cwd=repo_root(),
        env={**os.environ, "DISPATCH_JWT_SECRET": SECRET, "DISPATCH_RETRY_INTERVAL_S": "0.2",
             "DISPATCH_SWEEP_INTERVAL_MS": "50"},
        stdin=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60 * UNIT
        async with httpx.AsyncClient(base_url=url, timeout=1.0) as http:
            while True:
                assert up.poll() is None, (tmp_path / "up.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        family = psutil.Process(up.pid).children(recursive=True)
        names = sorted({p.name() for p in family})
        assert "haproxy" in names and any("redis-server" in n for n in names), names
        worker = await WorkerClient.connect(f"ws://127.0.0.1:{port}", "w", "metro")
        customer = Customer(url)
        oid = (await customer.create("metro")).json()["id"]
        offer = await worker.offer()
        assert offer.order_id == oid
        assert isinstance(await worker.request({"type": "accept", "offer_id": offer.offer_id}), Ack)
        assert (await customer.order(oid))["state"] == "assigned"
        await worker.close()
        await customer.close()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=45) == 0
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, alive
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        log.close()
