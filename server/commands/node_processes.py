"""``dispatch serve --workers N``: N node processes on one port.

The parent starts the private Redis (when no ``REDIS_URL`` is set) so that
every node shares it, then N children, each ``dispatch serve --reuse-port``:
a node of its own (its own id, event loop and core) listening on the same
address with SO_REUSEPORT, so the kernel spreads new connections over them.
Nodes on one machine are nodes like any other: they meet in Redis. Before
any of it, ``dispatch serve`` has locked the data directory for the parent and
checked that no server listens on the port (:mod:`server.process.claims`); the
children, given the parent's Redis, lock nothing.

A child that dies is started again after a backoff; one that keeps dying
(``RESTARTS_ALLOWED`` times within ``RESTART_WINDOW_S``) stops them all, and
the parent exits 1. SIGTERM or SIGINT is passed to every child, which drains
as a single node does; the parent waits up to ``shutdown_timeout_s`` and a
margin, kills what is left, stops the private Redis and exits 0 if every
child exited cleanly. Each child gets SIGTERM if the parent itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

from server.loops.supervisor import Recent
from server.process.embedded_redis import EmbeddedRedis, die_with_parent
from server.process.settings import Settings

log = logging.getLogger(__name__)

RESTARTS_ALLOWED = 5
RESTART_WINDOW_S = 60.0
SHUTDOWN_MARGIN_S = 5.0
POLL_S = 0.2
# A node drains on SIGTERM and exits 0; one stopped before it serves (still
# starting up) ends by the signal.
STOPPED_CLEANLY = (0, -signal.SIGTERM)


class Fleet:
    """The node processes of one ``dispatch serve --workers N``."""

    def __init__(self, cfg: Settings, count: int, serve_args: Sequence[str]) -> None:
        self.cfg = cfg
        self.count = count
        self.serve_args = list(serve_args)
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.deaths = Recent(RESTART_WINDOW_S)
        self.backoff_s = 0.5
        self.stopping = asyncio.Event()
        self.failed = False
        self.metrics_dir = cfg.metrics_dir or tempfile.mkdtemp(prefix="dispatch-metrics-")

    def _env(self, index: int, redis_url: str) -> Mapping[str, str]:
        env = dict(os.environ)
        if redis_url:
            env["REDIS_URL"] = redis_url
        if self.cfg.node_id:  # one id per process; else each makes its own up
            env["DISPATCH_NODE_ID"] = f"{self.cfg.node_id}-{index}"
        env["DISPATCH_METRICS_DIR"] = self.metrics_dir
        return env

    def _spawn(self, index: int, redis_url: str) -> None:
        command = [sys.executable, "-m", "server.cli", "serve", "--reuse-port", *self.serve_args]
        child = subprocess.Popen(
            command, env=self._env(index, redis_url), stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, start_new_session=True,
        )  # fmt: skip  # a signal to the group reaches the parent, which passes it on once
        self.children[index] = child
        log.info("node process %d started (pid %d)", index, child.pid)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        embedded: EmbeddedRedis | None = None
        redis_url = self.cfg.redis_url
        keeper: asyncio.Task[None] | None = None
        if not redis_url:
            embedded = EmbeddedRedis(self.cfg.data_dir)
            redis_url = embedded.start()
            keeper = loop.create_task(embedded.supervise())
        try:
            for index in range(self.count):
                self._spawn(index, redis_url)
            log.info("%d node processes on %s:%d", self.count, self.cfg.host, self.cfg.port)
            await self._keep(redis_url)
            return await self._stop()
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            if embedded is not None:
                embedded.stop()
            if not self.cfg.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    async def _keep(self, redis_url: str) -> None:
        """Start each child that exits again, until told to stop or one keeps dying."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), POLL_S)
            if self.stopping.is_set():
                return
            for index, child in list(self.children.items()):
                if child.poll() is None:
                    continue
                deaths = self.deaths.add(time.monotonic())
                if deaths == 1:  # the first in a while: start again soon
                    self.backoff_s = 0.5
                if deaths > RESTARTS_ALLOWED:
                    log.critical("node processes keep exiting (%d times in %g s); stopping all",
                                 deaths, RESTART_WINDOW_S)  # fmt: skip
                    self.failed = True
                    return
                log.error("node process %d (pid %d) exited with %s; starting it again in %g s",
                          index, child.pid, child.returncode, self.backoff_s)  # fmt: skip
                await asyncio.sleep(self.backoff_s)
                self.backoff_s = min(self.backoff_s * 2, 10.0)
                self._spawn(index, redis_url)

    async def _stop(self) -> int:
        """SIGTERM every child, wait for them (with a deadline), kill the rest."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.shutdown_timeout_s + SHUTDOWN_MARGIN_S
        while time.monotonic() < deadline and any(c.poll() is None for c in self.children.values()):
            await asyncio.sleep(0.05)
        clean = not self.failed
        for index, child in self.children.items():
            if child.poll() is None:
                log.error("node process %d (pid %d) did not stop in time; killing it",
                          index, child.pid)  # fmt: skip
                child.kill()
                child.wait()
                clean = False
            elif child.returncode not in STOPPED_CLEANLY:
                log.error("node process %d (pid %d) exited with %s", index, child.pid,
                          child.returncode)  # fmt: skip
                clean = False
        log.info("node processes stopped%s", "" if clean else " (not all cleanly)")
        return 0 if clean else 1
