"""Every background loop of the node runs under a supervisor.

A loop that raises (or returns: loops run until cancelled) is logged with its
traceback and started again after a backoff. One that fails more than
``max_restarts`` times within ``window_s`` is given up: the node reports it
in ``/readyz`` and ``on_fatal`` is called, which stops the process with a
non-zero exit status. Never a silent zombie.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Loop = Callable[[], Awaitable[None]]


class Recent:
    """How many times something happened within the last ``window_s`` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def add(self, now: float) -> int:
        """Count one more at ``now`` (monotonic seconds); how many are recent now."""
        self._times.append(now)
        while self._times[0] < now - self.window_s:
            self._times.popleft()
        return len(self._times)


class Supervisor:
    """Starts loops, restarts the ones that fail, gives up on the ones that keep failing."""

    def __init__(
        self, on_fatal: Callable[[str], None], *, max_restarts: int = 5, window_s: float = 60.0
    ) -> None:
        self.on_fatal = on_fatal
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.states: dict[str, str] = {}
        self.restarts: collections.Counter[str] = collections.Counter()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, loop: Loop) -> None:
        """Run ``loop`` under supervision, as ``name``."""
        self.states[name] = "running"
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._keep(name, loop), name=name
        )

    async def _keep(self, name: str, loop: Loop) -> None:
        failures = Recent(self.window_s)
        while True:
            self.states[name] = "running"
            try:
                await loop()
                log.error("background loop %s returned; loops must run until cancelled", name)
            except Exception:
                log.exception("background loop %s failed", name)
            recent = failures.add(time.monotonic())
            self.restarts[name] += 1
            if recent > self.max_restarts:
                self.states[name] = "failed"
                self.on_fatal(f"{name} failed {recent} times within {self.window_s:g} s")
                return
            self.states[name] = "restarting"
            await asyncio.sleep(min(0.1 * 2 ** (recent - 1), 5.0))
            log.warning("restarting background loop %s", name)

    def problems(self) -> list[str]:
        """The loops that are not running now, with why."""
        return [
            f"loop {name} is {state}" for name, state in self.states.items() if state != "running"
        ]

    async def stop(self, names: list[str] | None = None) -> None:
        """Cancel the loops (all, or those named), last started first, and wait for them."""
        chosen = [n for n in reversed(self._tasks) if names is None or n in names]
        for name in chosen:
            self._tasks[name].cancel()
        for name in chosen:
            with contextlib.suppress(asyncio.CancelledError):
                await self._tasks.pop(name)
            self.states.pop(name, None)
