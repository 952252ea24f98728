"""Location ingest: coalesce reports into batched Redis writes.

A location report never waits for its own round trip to Redis (one awaited
write per message caps a core near 8k messages/s). Reports land in a dict,
keyed by worker so only the latest position per flush is written; every
``location_flush_ms`` a few bulk commands per city store them (see
``Store.locate``), and the positions of workers on a job are published to
their orders' channels for the customers following them. The buffer is
bounded by the number of connected workers; the callbacks of one flush by the
per-socket rate limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from protocol.codec import encode
from protocol.messages import Position, WorkerMoved
from server.process.logs import Outage
from server.services.figures import percentile
from server.store import keys
from server.store.engine import StoreUnavailable
from server.store.redis_store import Store
from server.store.results import Spot

Written = Callable[[bool], None]  # told whether the position reached Redis


class LocationIngest:
    """Buffers positions and writes them in batches."""

    def __init__(self, store: Store, flush_ms: int) -> None:
        self.store = store
        self.flush_s = flush_ms / 1000
        self._latest: dict[str, dict[str, Spot]] = {}  # city -> worker -> latest spot
        self._skills: dict[str, tuple[str, ...]] = {}  # worker -> its skills (for the index)
        self._first: dict[str, set[str]] = {}  # city -> workers giving a first position
        self._on_job: set[str] = set()  # workers whose position their customers see
        self._moves: dict[str, bytes] = {}
        self._oldest: float | None = None
        self._after_write: list[Written] = []
        self._outage = Outage("location ingest (positions dropped meanwhile)")
        self.reports = 0
        self.written = 0
        self.dropped = 0
        self.lags_ms: deque[float] = deque(maxlen=2000)

    def report(
        self,
        city: str,
        worker_id: str,
        skills: tuple[str, ...],
        spot: Spot,
        jobs: Iterable[str],
        first: bool = False,
        on_written: Written | None = None,
    ) -> None:
        """Take one position; it reaches Redis within about one flush interval,
        after which ``on_written`` (if given) is told whether it did. ``first`` marks
        the first position of a session (or one after a long silence): the worker may
        have to enter the search index, which later reports only move it in."""
        self.reports += 1
        batch = self._latest.get(city)
        if batch is None:
            batch = self._latest[city] = {}
            if self._oldest is None:
                self._oldest = time.monotonic()
        batch[worker_id] = spot
        self._skills[worker_id] = skills
        if first:
            self._first.setdefault(city, set()).add(worker_id)
        if jobs:
            self._on_job.add(worker_id)
            position = Position(worker=worker_id, lat=spot[1], lng=spot[0], at=spot[2],
                                seen_at=self.store.now_ms())  # fmt: skip
            moved = encode(WorkerMoved(position=position))
            for order_id in jobs:
                self._moves[order_id] = moved
        if on_written is not None:
            self._after_write.append(on_written)

    async def flush(self) -> None:
        """Write what is buffered now."""
        if not self._latest and not self._moves:
            return
        batch, moves, oldest = self._latest, self._moves, self._oldest
        callbacks, skills, first, on_job = (
            self._after_write,
            self._skills,
            self._first,
            self._on_job,
        )
        self._latest, self._moves, self._oldest, self._after_write = {}, {}, None, []
        self._skills, self._first, self._on_job = {}, {}, set()
        try:
            if batch:
                await self.store.locate(batch, skills, first, on_job)
            if moves:
                await self.store.publish_many(
                    (keys.order_channel(oid), payload) for oid, payload in moves.items()
                )
        except StoreUnavailable as exc:
            self.dropped += sum(map(len, batch.values()))
            self._outage.failed(exc)
            for callback in callbacks:
                callback(False)
            return
        self._outage.recovered()
        self.written += sum(map(len, batch.values()))
        for callback in callbacks:
            callback(True)
        if oldest is not None:
            self.lags_ms.append((time.monotonic() - oldest) * 1000)

    async def run(self) -> None:
        """Flush every interval until cancelled; a final flush on the way out."""
        try:
            while True:
                await asyncio.sleep(self.flush_s)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())

    def stats(self) -> dict[str, float]:
        lags = list(self.lags_ms)
        return {
            "reports": self.reports,
            "written": self.written,
            "dropped": self.dropped,
            "lag_p50_ms": round(percentile(lags, 50), 2),
            "lag_p99_ms": round(percentile(lags, 99), 2),
            "lag_max_ms": round(max(lags, default=0.0), 2),
        }
