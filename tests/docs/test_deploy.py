"""The files in deploy/: what an operator runs, checked for the properties the
README promises (and by the tools themselves where they are installed)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess

import pytest

from server.process.settings import Settings
from tests.support import repo_root

DEPLOY = repo_root() / "deploy"


def _haproxy_lines() -> list[str]:
    text = (DEPLOY / "haproxy.cfg").read_text()
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0]]


def test_the_balancer_checks_readiness_and_keeps_websockets_open() -> None:
    """Nodes are taken out of rotation on a 503 from /readyz, open WebSockets have a
    tunnel timeout longer than the server's ping interval, bodies are buffered."""
    lines = _haproxy_lines()
    assert "option httpchk GET /readyz" in lines
    assert "http-check expect status 200" in lines
    assert "option http-buffer-request" in lines
    assert "option redispatch" in lines
    assert "timeout tunnel 1h" in lines
    servers = [line for line in lines if line.startswith("server ")]
    assert len(servers) >= 2 and all(line.endswith(" check") for line in servers)
    assert not any("shutdown-sessions" in line for line in lines)  # a node drains its own


def test_haproxy_accepts_the_config() -> None:
    """haproxy -c parses it (skipped where haproxy is not installed)."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (apt install haproxy) to check deploy/haproxy.cfg")
    subprocess.run([haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")], check=True)


def test_the_unit_runs_the_nodes_and_gives_them_time_to_drain() -> None:
    """The systemd unit runs dispatch serve --workers, signals only the parent, and
    waits longer than the nodes' own shutdown deadline."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "dispatch.service")
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/dispatch") and command[1:3] == ["serve", "--workers"]
    assert int(command[3]) >= 1
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > Settings().shutdown_timeout_s + 5
    assert service["Restart"] == "on-failure"
