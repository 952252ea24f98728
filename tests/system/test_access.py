"""Who may start a server, and what its logs must never hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from protocol.messages import Welcome
from tests.support import SECRET, ServerProcess, server_frame, unique_city, worker_token


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve"], env={**os.environ, **env},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("secret", "why"),
    [("", "development secret"), ("too-short-for-a-server", "shorter than 32 bytes")],
    ids=["dev-secret", "short-secret"],
)
def test_no_weak_secret_beyond_loopback(secret: str, why: str, tmp_path: Path) -> None:
    """``dispatch serve`` on a public address refuses the development secret or a short
    one, says how to set a good one, and exits before starting anything."""
    env = {"DISPATCH_HOST": "0.0.0.0", "DISPATCH_DATA_DIR": str(tmp_path), "REDIS_URL": ""}
    if secret:
        env["DISPATCH_JWT_SECRET"] = secret
    else:
        env["DISPATCH_JWT_SECRET"] = "dev-only-secret-change-me-in-production"
    done = _serve(env)
    assert done.returncode != 0
    assert why in done.stderr and "DISPATCH_JWT_SECRET" in done.stderr
    assert not (tmp_path / "redis.sock").exists()


async def test_tokens_never_reach_the_log(redis_url: str, tmp_path: Path) -> None:
    """With the access log on and debug logging, a token sent in a URL (WebSocket query)
    or a header does not appear in the server's log; the request itself does."""
    log = tmp_path / "node.log"
    env = {"DISPATCH_ACCESS_LOG": "true", "DISPATCH_LOG_LEVEL": "debug"}
    node = ServerProcess(redis_url, env=env, log=log).start()
    city = unique_city()
    token = worker_token("w", city)
    try:
        async with connect(f"{node.ws_url}/v1/worker?token={token}") as ws:
            await ws.send('{"type": "hello", "versions": [1]}')
            assert isinstance(server_frame(await ws.recv()), Welcome)
        async with connect(
            f"{node.ws_url}/v1/worker", additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            await ws.send('{"type": "hello", "versions": [1]}')
            assert isinstance(server_frame(await ws.recv()), Welcome)
    finally:
        node.stop()
    text = log.read_text()
    assert "/v1/worker" in text and "token=[redacted]" in text
    assert token not in text and token.split(".")[2] not in text
    assert SECRET not in text
