"""The benchmark's fleet: many worker sockets in one process, and a paced location sender.

A :class:`BenchWorker` is one worker app reduced to what the benchmark needs:
it says ``hello``, optionally goes ``available`` and reports where it is,
then sends location frames that were encoded once (only the ``at`` digits
change) and hands offers to whoever drives dispatch. :func:`send_locations`
spreads a fixed total rate over the fleet, round robin, and skips a socket
that the kernel no longer takes bytes from instead of buffering without end.

Imports ``protocol`` only, never ``server``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from loadtest import tokens
from loadtest.wsconn import WsConn, client_frame, open_ws
from protocol import codec
from protocol.messages import (
    AcceptOffer,
    Ack,
    ChangeStatus,
    Error,
    Fix,
    Hello,
    LocationReported,
    OfferMade,
    ReportProgress,
    ServerMessage,
    Welcome,
)

AT_PLACEHOLDER = 1_000_000_000_000  # 13 digits, like every `at` until the year 2286
CONGESTED_BYTES = 64 * 1024
STEPS: tuple[Literal["arrived", "started", "completed"], ...] = ("arrived", "started", "completed")

Reply = Callable[[ServerMessage], None]
OfferHandler = Callable[["BenchWorker", OfferMade], None]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class FleetStats:
    """What the fleet saw: sampled location ack times, errors by code, frame counts."""

    loc_ack_ms: list[float] = field(default_factory=list)
    accept_ack_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    frames: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Area:
    """A box around a centre where workers stand and pickups are."""

    lat: float = 52.52
    lng: float = 13.40
    half_lat: float = 0.03  # about 3.3 km
    half_lng: float = 0.045  # about 3 km at this latitude

    def point(self, rng: random.Random) -> tuple[float, float]:
        return (
            round(self.lat + rng.uniform(-self.half_lat, self.half_lat), 6),
            round(self.lng + rng.uniform(-self.half_lng, self.half_lng), 6),
        )


class BenchWorker:
    """One worker socket; every reply is matched to its request by ``id``."""

    def __init__(self, wid: str, city: str, lat: float, lng: float, stats: FleetStats) -> None:
        self.wid, self.city, self.lat, self.lng = wid, city, lat, lng
        self.stats = stats
        self.conn: WsConn | None = None
        self.pending: dict[str, Reply] = {}
        self.on_offer: OfferHandler | None = None
        self._ids = itertools.count()
        payload = codec.encode(LocationReported(points=[Fix(lat=lat, lng=lng, at=AT_PLACEHOLDER)]))
        head, _, self._loc_tail = payload.partition(str(AT_PLACEHOLDER).encode())
        self._loc_head = client_frame(payload)[: -len(payload)] + head

    # ------------------------------------------------------------ session

    async def open(
        self, host: str, port: int, secret: str, *, hello: bool = True, available: bool = False
    ) -> None:
        """Connect; unless not ``hello``, ``hello`` → ``welcome``; then, if ``available``,
        go available and report a position, each acknowledged."""
        token = tokens.worker_token(secret, self.wid, self.city)
        auth = {"Authorization": f"Bearer {token}"}
        self.conn = await open_ws(host, port, "/v1/worker", auth, self.on_message)
        if not hello:
            return
        welcome = await self.ask(Hello(versions=[1], id="hello"))
        if not isinstance(welcome, Welcome):
            raise ConnectionError(f"{self.wid}: expected welcome, got {welcome}")
        if available:
            for msg in (
                ChangeStatus(status="available", id="status"),
                LocationReported(points=[Fix(lat=self.lat, lng=self.lng, at=now_ms())], id="loc"),
            ):
                if isinstance(reply := await self.ask(msg), Error):
                    raise ConnectionError(f"{self.wid}: {reply.code}: {reply.message}")

    async def ask(self, msg: msgspec.Struct, timeout_s: float = 30.0) -> ServerMessage:
        """Send a message that carries an ``id``; return the reply that echoes it."""
        rid = getattr(msg, "id", None)
        assert rid is not None and self.conn is not None
        reply: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        self.pending[rid] = reply.set_result
        self.conn.send_text(codec.encode(msg))
        try:
            return await asyncio.wait_for(reply, timeout_s)
        finally:
            self.pending.pop(rid, None)

    def on_message(self, data: bytes) -> None:
        msg = codec.server_decoder.decode(data)
        self.stats.frames[type(msg).__name__] += 1
        rid = getattr(msg, "id", None)
        if rid is not None and (reply := self.pending.pop(rid, None)) is not None:
            reply(msg)
        elif isinstance(msg, Error):
            self.stats.errors[msg.code] += 1
        elif isinstance(msg, OfferMade) and self.on_offer is not None:
            self.on_offer(self, msg)

    # ------------------------------------------------------------ traffic

    def send_location(self, at: bytes, sample: bool) -> bool:
        """A location report (pre-encoded); with ``sample``, one asking for an ack,
        whose round trip lands in ``stats.loc_ack_ms``."""
        conn = self.conn
        if conn is None:
            return False
        if not sample:
            return conn.send(self._loc_head + at + self._loc_tail)
        rid = f"L{next(self._ids)}"
        fix = Fix(lat=self.lat, lng=self.lng, at=int(at))
        sent = time.perf_counter()
        self.pending[rid] = lambda _m: self.stats.loc_ack_ms.append(
            (time.perf_counter() - sent) * 1000
        )
        return conn.send_text(codec.encode(LocationReported(points=[fix], id=rid)))

    def accept(self, offer: OfferMade) -> None:
        """Accept, and on the ack run the job to completion at once."""
        if self.conn is None:
            return
        rid = f"A{next(self._ids)}"
        sent = time.perf_counter()

        def accepted(reply: ServerMessage) -> None:
            if isinstance(reply, Ack) and reply.job is not None:
                self.stats.accept_ack_ms.append((time.perf_counter() - sent) * 1000)
                self.finish(offer.order_id)
            elif isinstance(reply, Error):
                self.stats.errors[f"accept:{reply.code}"] += 1

        self.pending[rid] = accepted
        self.conn.send_text(codec.encode(AcceptOffer(offer_id=offer.offer_id, id=rid)))

    def finish(self, order_id: str) -> None:
        """arrived, started, completed in one write (the server applies them in order)."""
        if self.conn is not None:
            frames = (client_frame(codec.encode(ReportProgress(order_id, s))) for s in STEPS)
            self.conn.send(b"".join(frames))

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.abort()


def make_fleet(
    count: int, cities: Sequence[str], area: Area, stats: FleetStats, seed: int = 1
) -> list[BenchWorker]:
    """``count`` workers spread evenly over ``cities``, at random places in ``area``."""
    rng = random.Random(seed)
    run = f"{random.getrandbits(24):06x}"  # fresh ids each run, same places
    return [
        BenchWorker(f"w{run}-{i}", cities[i % len(cities)], *area.point(rng), stats)
        for i in range(count)
    ]


async def connect_fleet(
    workers: Sequence[BenchWorker], host: str, port: int, secret: str, *,
    hello: bool = True, available: bool = False, batch: int = 200,
    progress: Callable[[int], None] | None = None,
) -> int:  # fmt: skip
    """Open every worker's session, ``batch`` at a time; return how many failed."""
    failed = 0
    for start in range(0, len(workers), batch):
        chunk = workers[start : start + batch]
        results = await asyncio.gather(
            *(w.open(host, port, secret, hello=hello, available=available) for w in chunk),
            return_exceptions=True,
        )
        for w, result in zip(chunk, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                w.stats.errors[f"connect:{type(result).__name__}"] += 1
                w.abort()
                w.conn = None
        if progress is not None:
            progress(start + len(chunk))
    return failed


@dataclass
class SendResult:
    """What the paced sender did."""

    seconds: float = 0.0
    attempted: int = 0
    sent: int = 0
    congested: int = 0


async def send_locations(
    workers: Sequence[BenchWorker], rate: float, seconds: float, sample_every: int = 100,
    tick_s: float = 0.005,
) -> SendResult:  # fmt: skip
    """Send ``rate`` location reports a second over ``workers`` for ``seconds``; every
    ``sample_every``-th asks for an ack (0: none do)."""
    live = [w for w in workers if w.conn is not None]
    result = SendResult()
    if not live or rate <= 0:
        return result
    loop = asyncio.get_running_loop()
    start = loop.time()
    turn = itertools.cycle(live)
    while (elapsed := loop.time() - start) < seconds:
        at = str(now_ms()).encode()
        due = min(int(elapsed * rate) - result.attempted, int(rate * 0.1) + 1)
        for _ in range(due):
            worker = next(turn)
            result.attempted += 1
            conn = worker.conn
            if conn is None or conn.backlog() > CONGESTED_BYTES:
                result.congested += 1
            elif worker.send_location(
                at, sample_every > 0 and result.attempted % sample_every == 0
            ):
                result.sent += 1
        await asyncio.sleep(tick_s)
    result.seconds = loop.time() - start
    return result


def abort_all(workers: Sequence[BenchWorker]) -> None:
    for w in workers:
        w.abort()
        w.conn = None
