"""The benchmark's dispatch load: orders at a fixed rate, offers accepted at once.

Customers ``POST /v1/orders`` at a fixed rate (open loop: an order is created
on schedule whether or not earlier ones are answered). Every worker that gets
an offer accepts it at once and, on the ``ack``, reports ``arrived``,
``started`` and ``completed``, so it is available again. Everything is timed
on this process's one monotonic clock:

- dispatch latency: the POST written → the ``offer`` frame read by the worker
  (the offer can arrive before the POST's answer, so whichever comes second
  joins them);
- notify latency, for a sample of orders: the ``accept`` written → the
  ``assigned`` event read on the customer's live socket. For a sampled order
  the worker holds its accept until that socket has its ``snapshot``, so the
  event cannot hide inside the snapshot.

Imports ``protocol`` only, never ``server``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field

from loadtest import tokens
from loadtest.bench_clients import Area, BenchWorker
from loadtest.httpconn import HttpPool
from loadtest.wsconn import WsConn, open_ws
from protocol import codec
from protocol.messages import CreateOrder, EventHappened, OfferMade, Point, Snapshot


@dataclass(slots=True)
class Track:
    """One order's times (``time.perf_counter`` seconds)."""

    posted: float
    sampled: bool
    answered: float = 0.0
    offered: float | None = None
    accepted: float | None = None
    notified: float | None = None
    live_ready: bool = False
    held: tuple[BenchWorker, OfferMade] | None = None


@dataclass
class DispatchResult:
    """Latencies in ms (orders posted after the warm-up) and counts."""

    orders: int = 0
    post_errors: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    dispatch_ms: list[float] = field(default_factory=list)
    notify_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    unoffered: int = 0
    followed: int = 0


class DispatchDriver:
    """Creates orders, joins offers to them, accepts, follows a sample live."""

    def __init__(
        self, host: str, port: int, secret: str, cities: Sequence[str], area: Area,
        sample_every: int = 10,
    ) -> None:  # fmt: skip
        self.host, self.port, self.secret = host, port, secret
        self.cities, self.area = list(cities), area
        self.sample_every = sample_every
        self.customer = f"c{random.getrandbits(32):08x}"
        self.token = tokens.customer_token(secret, self.customer)
        self.http = HttpPool(host, port, {"Authorization": f"Bearer {self.token}"})
        self.tracks: dict[str, Track] = {}
        self.early: dict[str, tuple[float, BenchWorker, OfferMade]] = {}
        self.lives: list[WsConn] = []
        self.result = DispatchResult()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random(7)

    def attach(self, workers: Sequence[BenchWorker]) -> None:
        for w in workers:
            w.on_offer = self.on_offer

    # ------------------------------------------------------------ orders

    async def run(self, rate: float, seconds: float, tick_s: float = 0.005) -> None:
        """Create ``rate`` orders a second for ``seconds``; then wait a little for stragglers."""
        loop = asyncio.get_running_loop()
        start, made = loop.time(), 0
        while (elapsed := loop.time() - start) < seconds:
            for _ in range(min(int(elapsed * rate) - made, int(rate * 0.1) + 1)):
                self._spawn(self.post_order(made % self.sample_every == 0))
                made += 1
            await asyncio.sleep(tick_s)
        self.result.seconds = loop.time() - start
        self.result.orders = made
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post_order(self, sampled: bool) -> None:
        lat, lng = self.area.point(self._rng)
        city = self._rng.choice(self.cities)
        body = codec.encode(CreateOrder(city=city, skill="delivery", pickup=Point(lat, lng)))
        posted = time.perf_counter()
        try:
            status, answer = await self.http.request("POST", "/v1/orders", body)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            status, answer = 0, b""
        if status != 201:
            self.result.post_errors[status] += 1  # 0: no answer
            return
        oid = codec.order_view_decoder.decode(answer).id
        track = Track(posted, sampled, answered=time.perf_counter())
        self.tracks[oid] = track
        if sampled:
            self._spawn(self.follow(oid, track))
        early = self.early.pop(oid, None)
        if early is not None:
            track.offered = early[0]
            self._answer(track, early[1], early[2])

    # ------------------------------------------------------------ workers

    def on_offer(self, worker: BenchWorker, offer: OfferMade) -> None:
        now = time.perf_counter()
        track = self.tracks.get(offer.order_id)
        if track is None:
            self.early[offer.order_id] = (now, worker, offer)
            return
        if track.offered is None:
            track.offered = now
        self._answer(track, worker, offer)

    def _answer(self, track: Track, worker: BenchWorker, offer: OfferMade) -> None:
        if track.sampled and not track.live_ready:
            track.held = (worker, offer)
            return
        track.accepted = time.perf_counter()
        worker.accept(offer)

    # ------------------------------------------------------------ customers live

    async def follow(self, oid: str, track: Track) -> None:
        """Open the order's live socket; release a held accept once the snapshot is in."""

        def on_live(data: bytes) -> None:
            msg = codec.live_decoder.decode(data)
            if isinstance(msg, Snapshot):
                self._release(track)
            elif isinstance(msg, EventHappened) and msg.event.type == "assigned":
                track.notified = track.notified or time.perf_counter()

        path = f"/v1/orders/{oid}/live?token={self.token}"
        try:
            conn = await open_ws(self.host, self.port, path, on_message=on_live)
        except (OSError, TimeoutError):
            self._release(track)  # do not hold the worker's accept for nothing
            return
        self.lives.append(conn)
        self.result.followed += 1

    def _release(self, track: Track) -> None:
        track.live_ready = True
        if track.held is not None:
            worker, offer = track.held
            track.held = None
            self._answer(track, worker, offer)

    def collect(self, after: float) -> DispatchResult:
        """Latencies of the orders posted at or after ``after`` (perf_counter seconds)."""
        r = self.result
        for track in self.tracks.values():
            if track.posted < after:
                continue
            r.post_ms.append((track.answered - track.posted) * 1000)
            if track.offered is None:
                r.unoffered += 1
                continue
            r.dispatch_ms.append((track.offered - track.posted) * 1000)
            if track.sampled and track.accepted is not None and track.notified is not None:
                r.notify_ms.append((track.notified - track.accepted) * 1000)
        return r

    def close(self) -> None:
        for conn in self.lives:
            conn.abort()
        for task in self._tasks:
            task.cancel()
        self.http.close()
