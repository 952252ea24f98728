"""Log lines: JSON when asked, each naming the node, and the worker and the order
it is about where there is one; tokens never shown."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from server.cli import RedactTokens
from server.process import logs
from tests.support import UNIT, ServerProcess, WorkerClient, unique_city


def _logger(stream: io.StringIO) -> logging.Logger:
    """A logger set up as ``configure_logging`` sets the root one, for JSON."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokens())
    handler.addFilter(logs.Context("node-t"))
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger(f"test-logs-{id(stream)}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_line_names_the_worker_and_order_it_is_about() -> None:
    """Inside a worker's task and an order's block, lines carry both; outside, neither."""
    stream = io.StringIO()
    log = _logger(stream)

    async def worker_task() -> None:
        logs.WORKER.set("w-7")
        with logs.about_order("paris.0123456789abcdef"):
            log.warning("inside %s", "both")
        log.info("worker only")

    await asyncio.create_task(worker_task())
    log.info("neither, token=abc.def.ghi")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    inside, worker_only, neither, failed = _lines(stream)
    assert inside["worker"] == "w-7" and inside["order"] == "paris.0123456789abcdef"
    assert inside["message"] == "inside both" and inside["level"] == "warning"
    assert inside["node"] == "node-t" and str(inside["time"]).endswith("+00:00")
    assert worker_only["worker"] == "w-7" and "order" not in worker_only
    assert "worker" not in neither and neither["message"] == "neither, token=[redacted]"
    assert "ValueError: boom" in str(failed["exception"])


async def test_a_server_logs_json_lines(redis_url: str, tmp_path: Path) -> None:
    """With log_format json every line a real server writes (uvicorn's too) is one
    JSON object with the node; a flooding worker's warning names the worker."""
    log_file = tmp_path / "server.log"
    env = {"DISPATCH_LOG_FORMAT": "json", "DISPATCH_LOG_LEVEL": "info",
           "DISPATCH_FRAME_RATE_PER_S": "1"}  # fmt: skip
    node = ServerProcess(redis_url, env=env, log=log_file).start()
    try:
        w = await WorkerClient.connect(node.ws_url, "flooder", unique_city(), status=None)
        with contextlib.suppress(ConnectionClosed):
            for i in range(200):
                await w.send({"type": "ping", "id": f"p{i}"})
            while True:  # read the answers, or the client stops reading before the close
                await asyncio.wait_for(w.ws.recv(), 10 * UNIT)
        assert w.ws.close_code == 1008
    finally:
        node.stop()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines and all(line["node"] == node.node for line in lines)
    assert any(line["message"].startswith("node ") and " up " in line["message"] for line in lines)
    flood = [line for line in lines if "keeps flooding" in str(line["message"])]
    assert flood and flood[0]["worker"] == "flooder"
