"""One loop that runs every timed action of every simulated worker.

Ten thousand workers each reporting their location every few seconds would
be ten thousand sleeping tasks; instead every due action (a location report,
an answer to an offer after the worker's "thinking" delay, arriving at a
pickup) is an entry in one heap, and one task pops and runs what is due.

Callbacks run one after another inside that task, so they must not wait for
the network: sending a frame is fine (it only waits when the socket's write
buffer is full, and senders check that first), a request/response round
trip is not (start a task for it). How late each entry runs against its due
time is recorded in the histogram named by :attr:`Scheduler.lag_histogram`
(the runner names one per phase): it is how far behind its own schedule the
simulator is running.

Imports only the standard library and ``simulator.stats``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

from simulator.stats import Metrics

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[None] | None]

# Entries due this soon run in the current batch: at 10,000 workers this turns
# thousands of separate wake-ups a second into a few hundred, for lag of at most
# this much *early* (recorded as zero).
SLACK_S = 0.005


class Scheduler:
    """A heap of (due time, action) run by :meth:`run` on the event loop's clock."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._heap: list[tuple[float, int, Action]] = []
        self._seq = itertools.count()
        self._loop = asyncio.get_running_loop()
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_at = float("inf")
        self._stopped = False
        self._lag_window_ms = 0.0
        self.lag_histogram = "scheduler_lag_ms"

    def now(self) -> float:
        """The scheduler's clock (the event loop's monotonic time, in seconds)."""
        return self._loop.time()

    def call_at(self, when: float, action: Action) -> None:
        """Run ``action`` at ``when`` (loop time)."""
        heapq.heappush(self._heap, (when, next(self._seq), action))
        if when < self._wake_at and self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def call_later(self, delay: float, action: Action) -> None:
        """Run ``action`` after ``delay`` seconds."""
        self.call_at(self.now() + delay, action)

    def stop(self) -> None:
        """Make :meth:`run` return; entries not yet due are dropped."""
        self._stopped = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def __len__(self) -> int:
        return len(self._heap)

    def take_lag_window(self) -> float:
        """The worst lag (ms) since the previous call."""
        worst, self._lag_window_ms = self._lag_window_ms, 0.0
        return worst

    async def run(self) -> None:
        """Run due actions until :meth:`stop`."""
        while not self._stopped:
            now = self.now()
            if self._heap and self._heap[0][0] <= now + SLACK_S:
                await self._run_due(now + SLACK_S)
                continue
            self._wakeup = self._loop.create_future()
            self._wake_at = self._heap[0][0] if self._heap else float("inf")
            timer = None
            if self._heap:
                timer = self._loop.call_at(self._wake_at, _resolve, self._wakeup)
            await self._wakeup
            self._wake_at = float("inf")
            if timer is not None:
                timer.cancel()

    async def _run_due(self, until: float) -> None:
        """Run every entry due by ``until``, recording how late each one is."""
        record = self.metrics.record
        heap = self._heap
        while heap and heap[0][0] <= until and not self._stopped:
            when, _, action = heapq.heappop(heap)
            lag_ms = (self._loop.time() - when) * 1000.0
            record(self.lag_histogram, lag_ms)
            self._lag_window_ms = max(self._lag_window_ms, lag_ms)
            try:
                pending = action()
                if pending is not None:
                    await pending
            except Exception:
                log.exception("scheduled action failed")
                self.metrics.error("sim_internal")
        # Let the sockets' callbacks run between batches.
        await asyncio.sleep(0)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
