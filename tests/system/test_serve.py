"""``dispatch serve`` as a new operator runs it: one process owns a data
directory and a port, a signal ends a drain with status 0, and a WebSocket is
not three log lines."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from server.process import logs
from tests.support import (
    UNIT,
    Customer,
    ServerProcess,
    WorkerClient,
    customer_token,
    stalled_post,
    unique_city,
)

pytestmark = pytest.mark.slow


def _private(data_dir: Path, log: Path, args: tuple[str, ...] = ()) -> ServerProcess:
    """A server with a private Redis in ``data_dir``, its stderr in ``log``."""
    return ServerProcess("", {"DISPATCH_DATA_DIR": str(data_dir)}, log=log, args=args)


def _refused(proc: ServerProcess, timeout_s: float = 5.0) -> tuple[int, str]:
    """Run ``proc`` expecting it to exit by itself within ``timeout_s`` units:
    its status and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", *proc.args], env=proc.env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s * UNIT,
        check=False,
    )  # fmt: skip
    return done.returncode, done.stderr


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=2 * UNIT).status_code == 200


async def test_a_second_server_in_the_data_dir_exits_and_leaves_the_first_alone(
    tmp_path: Path,
) -> None:
    """A second server in a running one's data dir exits at once; the first keeps its orders."""
    first = _private(tmp_path / "data", tmp_path / "first.log").start()
    customer = Customer(first.url, "c-owner")
    try:
        oid = (await customer.create(unique_city())).json()["id"]
        status, stderr = _refused(_private(tmp_path / "data", tmp_path / "second.log"))
        assert status != 0
        assert str(tmp_path / "data") in stderr and "in use" in stderr, stderr
        assert "Traceback" not in stderr
        assert _ready(first.url)
        assert (await customer.order(oid))["id"] == oid
    finally:
        await customer.close()
        first.stop()
    assert first.proc is not None and first.proc.returncode == 0


async def test_a_fleet_owns_its_data_dir(tmp_path: Path) -> None:
    """A node or a fleet in a running fleet's data dir exits at once; the fleet stays ready."""
    fleet = _private(tmp_path / "data", tmp_path / "fleet.log", ("--workers", "2")).start()
    try:
        for args in ((), ("--workers", "2")):
            status, stderr = _refused(_private(tmp_path / "data", tmp_path / "x.log", args))
            assert status != 0 and str(tmp_path / "data") in stderr, stderr
        assert all(_ready(fleet.url) for _ in range(10))  # new connections: both nodes
    finally:
        fleet.stop()
    assert fleet.proc is not None and fleet.proc.returncode == 0


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["node", "fleet"])
async def test_a_taken_port_stops_a_server_before_it_starts_anything(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A server or fleet on a taken port exits naming it, having started no Redis."""
    first = _private(tmp_path / "a", tmp_path / "first.log").start()
    try:
        second = _private(tmp_path / "b", tmp_path / "second.log", args)
        second.port, second.env["DISPATCH_PORT"] = first.port, str(first.port)
        status, stderr = _refused(second)
        assert status != 0 and f":{first.port}" in stderr, stderr
        assert "Traceback" not in stderr
        assert not (tmp_path / "b" / "redis.log").exists(), "a Redis was started"
        assert _ready(first.url)
    finally:
        first.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_drains_and_exits_0(redis_url: str, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C or SIGTERM to a node drains it and exits 0, with no traceback."""
    node = ServerProcess(redis_url, log=tmp_path / "node.log").start()
    assert node.proc is not None
    node.proc.send_signal(sig)
    assert node.proc.wait(timeout=15 * UNIT) == 0
    assert "Traceback" not in (tmp_path / "node.log").read_text()


async def test_a_second_ctrl_c_cuts_the_drain_short_with_130(
    redis_url: str, tmp_path: Path
) -> None:
    """Ctrl-C again while a request holds the drain up ends the node at once, with 130."""
    log = tmp_path / "node.log"
    env = {"DISPATCH_BODY_TIMEOUT_S": str(30 * UNIT), "DISPATCH_LOG_LEVEL": "info"}
    node = ServerProcess(redis_url, env, log=log).start()
    assert node.proc is not None
    writer = await stalled_post(node.port, customer_token("c-slow"))
    try:
        node.proc.send_signal(signal.SIGINT)
        await _until_logged(log, "Waiting for connections to close")
        node.proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(node.proc.wait, 10 * UNIT) == 130
    finally:
        writer.close()
        node.stop()
    assert "KeyboardInterrupt" not in log.read_text()


async def _until_logged(log: Path, text: str, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s * UNIT
    while text not in log.read_text():
        assert loop.time() < deadline, f"{text!r} not logged"
        await asyncio.sleep(0.02)


def test_a_node_that_failed_for_good_exits_1(redis_url: str, tmp_path: Path) -> None:
    """A node whose loop keeps failing (no metrics directory) exits 1, not by its SIGTERM."""
    missing = tmp_path / "no-such-dir"
    node = ServerProcess(redis_url, {"DISPATCH_METRICS_DIR": str(missing)})
    status, stderr = _refused(node, timeout_s=20.0)
    assert status == 1, stderr
    assert "metrics-file failed" in stderr


@pytest.mark.parametrize("access_log", [False, True], ids=["quiet", "access-log"])
async def test_websockets_are_logged_only_with_the_access_log(
    redis_url: str, tmp_path: Path, access_log: bool
) -> None:
    """At level info a worker socket logs no line of its own unless access_log is on."""
    log = tmp_path / "node.log"
    env = {"DISPATCH_LOG_LEVEL": "info", "DISPATCH_ACCESS_LOG": str(access_log).lower()}
    node = ServerProcess(redis_url, env=env, log=log).start()
    city = unique_city()
    workers = [await WorkerClient.connect(node.ws_url, f"w-quiet-{i}", city) for i in range(3)]
    await workers[0].close()
    node.stop()  # closes the others' sockets from the server's side
    for worker in workers[1:]:
        await worker.close()
    text = log.read_text()
    assert "node " in text and " up " in text  # the node's own INFO lines are there
    assert text.count('"WebSocket /v1/worker" [accepted]') == (3 if access_log else 0), text
    assert text.count("connection open") == (3 if access_log else 0)
    assert access_log or "connection closed" not in text


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_websocket_lines_are_debug_lines(level: int) -> None:
    """uvicorn's per-WebSocket lines are DEBUG lines; its other lines pass unchanged."""
    logger = logging.getLogger(f"test-ws-lines-{level}")
    logger.setLevel(level)
    shown: list[logging.LogRecord] = []
    ws_lines = logs.WebSocketLines()
    for msg, args in [('%s - "WebSocket %s" [accepted]', ("1.2.3.4:5", "/v1/worker")),
                      ("connection open", ()), ("connection closed", ()),
                      ("Shutting down", ())]:  # fmt: skip
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None)
        if ws_lines.filter(record):
            shown.append(record)
    expected = ["Shutting down"] if level == logging.INFO else [
        '1.2.3.4:5 - "WebSocket /v1/worker" [accepted]', "connection open", "connection closed",
        "Shutting down"]  # fmt: skip
    assert [r.getMessage() for r in shown] == expected
    assert [r.levelname for r in shown][:-1] == ["DEBUG"] * (len(expected) - 1)
