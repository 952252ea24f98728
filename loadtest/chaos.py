"""``dispatch chaos``: a fleet under load while nodes and Redis are killed, then the proof.

One command starts a private redis-server (append-only file, fsync every
second), N ``dispatch serve`` nodes and the simulator (the ``chaos``
scenario: 1,000 workers, 20 orders/s, spread over the nodes, with a
journal of what its clients were told). While it runs, a random node is
SIGKILLed every ``--kill-every`` seconds and started again (same port,
same node id) ``--down`` seconds later; once, Redis is SIGKILLed and
restarted from its file; once, Redis is SIGSTOPped for ``--stop`` seconds.
With ``--cluster`` the Redis is a local Redis Cluster (three masters with a
replica each): a master is SIGKILLed (its replica takes over; the old
master comes back as a replica) and, once, a master is SIGSTOPped (it is
failed over meanwhile and resumes as a replica).
At the end the invariants of :mod:`loadtest.chaos_check` are checked by
reading Redis directly; a table is printed (and written as JSON with
``--out``), and the exit status is 1 if any was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import cast

import redis

from loadtest.chaos_check import Faults, Findings, check
from server.commands.embedded_cluster import ClusterNode, LocalCluster
from server.process.embedded_redis import EmbeddedRedis
from simulator import journal as sim_journal
from simulator import load_scenario, with_overrides
from simulator.runner import city_names

READY_TIMEOUT_S = 30.0


# --quick: the one-minute run of the test suite (tests/loadtest/test_chaos.py); an option
# given as well wins.
FULL = {"duration": 600.0, "kill_every": 10.0, "grace": 25.0}
QUICK = {"duration": 60.0, "kill_every": 6.0, "grace": 10.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--quick", action="store_true",
        help="the suite's one-minute run: --duration 60 --kill-every 6 --grace 10")  # fmt: skip
    add("--duration", type=float, help="seconds of orders under faults (600)")
    add("--nodes", type=int, default=3, help="server nodes (3)")
    add("--workers", type=int, default=1000, help="simulated workers (1000)")
    add("--rate", type=float, default=20.0, help="orders per second (20)")
    add("--kill-every", type=float, help="seconds between node kills (10)")
    add("--down", type=float, default=2.0, help="seconds a killed node stays down (2)")
    add("--stop", type=float, default=10.0, help="seconds Redis is SIGSTOPped, once (10)")
    add("--grace", type=float, help="seconds for open orders to end after (25)")
    add("--seed", type=int, default=1, help="random seed for the fault schedule (1)")
    add(
        "--cluster",
        action="store_true",
        help="run on a local Redis Cluster (3 masters, 3 replicas); kill and stop masters",
    )
    add("--workdir", type=Path, help="keep logs, journal and Redis files here (default: temp)")
    add("--out", type=Path, help="write the findings as JSON to this file")


def run(args: argparse.Namespace) -> int:
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return asyncio.run(_run(args))


def _say(text: str) -> None:
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def _now_ms() -> int:
    return int(time.time() * 1000)


class Node:
    """One ``dispatch serve`` process, restartable on the same port and node id."""

    def __init__(self, index: int, port: int, env: dict[str, str], logs: Path) -> None:
        self.id = f"chaos-{index}"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**env, "DISPATCH_PORT": str(port), "DISPATCH_NODE_ID": self.id}
        self.log = logs / f"{self.id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve"], env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    async def ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.id} exited with {self.proc.returncode}; see {self.log}")
            try:
                status = await asyncio.to_thread(_get_status, f"{self.url}/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.id} did not become ready; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class OneRedis:
    """The private redis-server under test: killed and restarted from its file."""

    def __init__(self, workdir: Path) -> None:
        self.redis = EmbeddedRedis(workdir / "redis", appendonly=True)

    def start(self) -> str:
        return self.redis.start()

    async def kill(self, rng: random.Random) -> None:
        proc = self.redis._proc
        assert proc is not None
        proc.kill()
        proc.wait()
        _say("SIGKILL redis-server; restarting it from its append-only file")
        await asyncio.to_thread(self.redis.start)

    async def pause(self, seconds: float, rng: random.Random) -> None:
        proc = self.redis._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        _say(f"SIGSTOP redis-server for {seconds:g} s")
        await asyncio.sleep(seconds)
        os.kill(proc.pid, signal.SIGCONT)
        _say("SIGCONT redis-server")

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.redis.socket))

    def stop(self) -> None:
        self.redis.stop()


class Cluster:
    """A local Redis Cluster under test: masters are killed and stopped, and fail over."""

    def __init__(self, workdir: Path) -> None:
        self.cluster = LocalCluster(workdir / "cluster")

    def start(self) -> str:
        return self.cluster.start()

    def _master(self, rng: random.Random) -> ClusterNode:
        masters = [n for n in self.cluster.nodes if n.proc is not None and n.role() == "master"]
        return rng.choice(masters)

    async def _failed_over(self, started: float) -> None:
        while not await asyncio.to_thread(self.cluster.healthy):
            await asyncio.sleep(0.1)
        _say(f"the cluster is ok again after {time.monotonic() - started:.1f} s")

    async def kill(self, rng: random.Random) -> None:
        node = self._master(rng)
        node.kill()
        started = time.monotonic()
        _say(f"SIGKILL the master on port {node.port}; its replica takes over")
        await self._failed_over(started)
        node.start()  # back as a replica of the new master
        await self._failed_over(started)

    async def pause(self, seconds: float, rng: random.Random) -> None:
        node = self._master(rng)
        assert node.proc is not None
        os.kill(node.proc.pid, signal.SIGSTOP)
        _say(f"SIGSTOP the master on port {node.port} for {seconds:g} s")
        await asyncio.sleep(seconds)
        os.kill(node.proc.pid, signal.SIGCONT)
        _say("SIGCONT it; it rejoins as a replica")
        await self._failed_over(time.monotonic())

    def client(self) -> redis.Redis:
        seed = next(n for n in self.cluster.nodes if n.proc is not None)
        return cast(redis.Redis, redis.RedisCluster(host="127.0.0.1", port=seed.port))

    def stop(self) -> None:
        self.cluster.stop()


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def plan(args: argparse.Namespace, ramp_s: float) -> list[tuple[float, str]]:
    """The faults, as (seconds after the simulator started, action), in time order."""
    start, end = ramp_s + 3.0, ramp_s + args.duration - 8.0
    span = end - start
    redis_kill, redis_stop = start + 0.35 * span, start + 0.65 * span
    calm = [(redis_kill - 4, redis_kill + 8), (redis_stop - 4, redis_stop + args.stop + 6)]
    actions = [(redis_kill, "kill-redis"), (redis_stop, "stop-redis")]
    t = start
    while t < end:
        if not any(a <= t <= b for a, b in calm):
            actions.append((t, "kill-node"))
        t += args.kill_every
    return sorted(actions)


async def _faults(
    args: argparse.Namespace, schedule: list[tuple[float, str]], nodes: list[Node],
    store: OneRedis | Cluster, faults: Faults, started: float,
) -> None:  # fmt: skip
    rng = random.Random(args.seed)
    for at, action in schedule:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        if action == "kill-node":
            node = rng.choice(nodes)
            node.kill()
            faults.node_kills.append((node.id, _now_ms()))
            _say(f"SIGKILL {node.id}; back in {args.down:g} s")
            await asyncio.sleep(args.down)
            node.start()
        elif action == "kill-redis":
            faults.redis_kills.append(_now_ms())
            await store.kill(rng)
        elif action == "stop-redis":
            stopped = _now_ms()
            await store.pause(args.stop, rng)
            faults.redis_stops.append((stopped, _now_ms()))


async def _run(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dispatch-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    config = with_overrides(
        load_scenario("chaos"),
        {
            "workers.count": args.workers,
            "orders.rate_per_s": args.rate,
            "duration_s": args.duration,
        },
    )
    cities = city_names(config)
    store: OneRedis | Cluster = Cluster(workdir) if args.cluster else OneRedis(workdir)
    url = store.start()
    env = {**os.environ, "REDIS_URL": url, "DISPATCH_JWT_SECRET": secret,
           "DISPATCH_CITIES": ",".join(cities), "DISPATCH_LOG_LEVEL": "warning"}  # fmt: skip
    nodes = [Node(i, port, env, workdir) for i, port in enumerate(_free_ports(args.nodes))]
    sim: subprocess.Popen[bytes] | None = None
    try:
        for node in nodes:
            node.start()
        await asyncio.gather(*(node.ready() for node in nodes))
        journal_dir = workdir / "journal"
        _say(f"{len(nodes)} nodes up on Redis {url}; {args.workers} workers, {args.rate:g} "
             f"orders/s for {args.duration:g} s; files in {workdir}")  # fmt: skip
        sim_log = (workdir / "simulator.log").open("ab")
        sim = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "simulate", "--scenario", "chaos",
             "--url", ",".join(n.url for n in nodes), "--secret", secret,
             "--journal", str(journal_dir), "--report", str(workdir / "simulator.json"),
             "--quiet", "--workers", str(args.workers), "--rate", str(args.rate),
             "--duration", str(args.duration), "--grace", str(args.grace)],
            stdin=subprocess.DEVNULL, stdout=sim_log, stderr=sim_log,
        )  # fmt: skip
        started = time.monotonic()
        faults = Faults(cluster=args.cluster)
        schedule = plan(args, config.workers.ramp_s)
        injecting = asyncio.create_task(_faults(args, schedule, nodes, store, faults, started))
        total = config.workers.ramp_s + args.duration + config.grace_s
        next_report = started + 10
        while sim.poll() is None:
            now = time.monotonic()
            if now - started > total + 60:
                raise RuntimeError(f"the simulator did not finish within {total + 60:.0f} s")
            if now >= next_report:
                done = len(faults.node_kills) + len(faults.redis_kills) + len(faults.redis_stops)
                _say(f"{now - started:.0f} of about {total:.0f} s; {done} faults so far")
                next_report += 10
            await asyncio.sleep(0.5)
        await injecting
        for node in nodes:
            if node.proc is None or node.proc.poll() is not None:
                node.start()
        await asyncio.gather(*(node.ready() for node in nodes))
        _say("simulator done; checking the invariants in Redis")
        client = store.client()
        findings = check(client, cities, sim_journal.read(journal_dir), faults)
        client.close()
        findings.taken_over_alive = sum(
            n.log.read_text(errors="replace").count("taken over as dead while alive") for n in nodes
        )
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
        for node in nodes:
            node.stop()
        store.stop()
    violations = findings.violations()
    sys.stdout.write(table(findings, faults, args) + "\n")
    if args.out:
        args.out.write_text(json.dumps(
            {"findings": asdict(findings), "violations": violations,
             "faults": asdict(faults), "workdir": str(workdir)}, indent=2,
        ) + "\n")  # fmt: skip
    for violation in violations:
        _say(f"VIOLATION: {violation}")
    return 1 if violations else 0


def table(f: Findings, faults: Faults, args: argparse.Namespace) -> str:
    """The findings as the README shows them."""
    rows = [
        ("faults", f"{len(faults.node_kills)} node kills, {len(faults.redis_kills)} Redis "
                   f"kill, {len(faults.redis_stops)} Redis stop of {args.stop:g} s"),
        ("orders acknowledged / found in Redis", f"{f.orders_acked} / {f.orders_found}"),
        ("acknowledged orders lost", f"{len(f.lost)}"),
        ("lost within the loss window (Redis or a master SIGKILLed < 1 s after the ack)",
         f"{len(f.lost_in_aof_window)}"),
        ("orders stuck (neither ended nor alive with a timer)", f"{len(f.stuck)}"),
        ("orders still alive at the end, with a timer or a worker",
         f"{f.still_live - len(f.stuck)}"),
        ("orders assigned twice", f"{len(f.double_assigned)}"),
        ("histories with an illegal step", f"{len(f.illegal_histories)}"),
        ("workers over capacity / offered without an offer",
         f"{len(f.over_capacity)} / {len(f.stuck_offered)}"),
        ("live followers connected throughout / missed or repeated an event",
         f"{f.followers_whole} / {len(f.followers_wrong)}"),
        *([("followers told of events a failed-over master then lost",
            f"{len(f.followers_in_failover)}")] if args.cluster else []),
        ("workers of killed nodes back within 10 s",
         f"{f.back_in_time} of {f.killed_sessions} ({f.back_share:.1%}); "
         f"p50 {f.back_p50_s:.1f} s, max {f.back_max_s:.1f} s"),
        ("offers withdrawn from lost workers and re-dispatched", f"{f.offers_redispatched}"),
        ("nodes declared dead while alive (they closed their sockets)",
         f"{f.taken_over_alive}"),
        ("longest an offer stayed with a dead node (kill to withdrawal)",
         f"{f.longest_withdrawal_s:.1f} s"),
        ("longest wait for a new offer after the withdrawal", f"{f.longest_redispatch_s:.2f} s"),
        ("longest search for a worker (time in dispatching)", f"{f.longest_search_s:.1f} s"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
