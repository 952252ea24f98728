"""The Redis store: runs the scripts and reads records, nothing more.

Every method is one round trip (a script, a pipeline or a read). Redis errors
are translated here, at the edge, into :class:`StoreUnavailable`; refusals by
a script come back as :class:`Refused` with the protocol's error code.
Deciding *what* to do is the dispatcher's job (``server/dispatcher.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import NamedTuple, cast

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from protocol.errors import message
from protocol.messages import OfferMode, OrderView, Point, Position
from server.core.errors import ClientError, ServerFault
from server.core.ranking import Candidate
from server.store import keys
from server.store.keys import City, OfferId, OrderId, WorkerId
from server.store.mux import Mux, MuxClosed, ReplyError
from server.store.records import decoded, event, pairs, point, text, view_from_fields
from server.store.scripts import sources


class StoreUnavailable(ServerFault):
    """Redis could not be reached or answered with an error."""


class Refused(ClientError):
    """A script refused the change; ``code`` says why."""


class Tick(NamedTuple):
    """What a claimed order needs: ``done``, ``wait`` or ``search`` (with the
    order's details and candidates, nearest first)."""

    action: str
    created_at: int = 0
    dv: str = ""
    skill: str = ""
    mode: OfferMode = OfferMode.SEQUENTIAL
    pickup: Point | None = None
    dropoff: Point | None = None
    note: str | None = None
    candidates: tuple[Candidate, ...] = ()


class Accepted(NamedTuple):
    """A successful accept: the worker's new state and the job's details."""

    worker_state: str
    order_state: str
    skill: str
    pickup: Point
    dropoff: Point | None
    note: str | None


class WorkerRecord(NamedTuple):
    """A worker as its socket opens: state, pending offer frame, jobs."""

    state: str
    offer_frame: bytes
    jobs: tuple[OrderId, ...]


# Where and when a worker was: (lng, lat, at ms). A plain tuple: one is made
# per location report, and a NamedTuple costs measurably more to build.
Spot = tuple[float, float, int]


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc


def _refusal(result: list[object]) -> Refused:
    code = text(result[1])
    return Refused(code, message(code))


class Store:
    """Scripts over one multiplexed connection; reads and batches over a pool."""

    def __init__(self, redis: aioredis.Redis, mux: Mux) -> None:
        self.redis = redis
        self.mux = mux
        self._sources = sources()
        self._shas = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in self._sources.items()
        }
        self._cities: set[str] = set()

    async def _run(self, name: str, keys_: Sequence[str], args: Sequence[object]) -> object:
        """Run script ``name`` on the multiplexed connection (loading it if Redis lost it)."""
        command = ("EVALSHA", self._shas[name], len(keys_), *keys_, *args)
        try:
            reply = await self.mux.call(*command)
            if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
                await self.mux.call("SCRIPT", "LOAD", self._sources[name])
                reply = await self.mux.call(*command)
        except (MuxClosed, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        if isinstance(reply, ReplyError):
            raise StoreUnavailable(f"redis script {name} failed: {reply}")
        return reply

    async def _step(self, name: str, keys_: Sequence[str], args: Sequence[object]) -> list[str]:
        """Run a compare-and-set script that answers ``{1, ...}`` or ``{0, code}``;
        return the ``...`` part, or raise :class:`Refused` with the code."""
        result = cast(list[object], await self._run(name, keys_, args))
        if result[0] != 1:
            raise _refusal(result)
        return [text(x) for x in result[1:]]

    async def ping(self) -> None:
        async with _translated():
            await self.redis.ping()

    async def server_version(self) -> tuple[int, ...]:
        async with _translated():
            info = await self.redis.info("server")
        return tuple(int(p) for p in str(info["redis_version"]).split(".")[:3])

    # ------------------------------------------------------------ orders

    async def create_order(
        self, oid: OrderId, fields: dict[str, str], now: int, lease_until: int
    ) -> OrderView | None:
        """Create the order; its view as created, or None if it existed already."""
        city = keys.city_of(oid) or ""
        flat = [x for pair in fields.items() for x in pair]
        await self._know_city(city)
        result = await self._run(
            "create_order", [keys.order(oid), keys.timers(city)], [oid, now, lease_until, *flat]
        )
        if not isinstance(result, list):
            return None
        events = [event(entry[0], pairs(entry[1])) for entry in result]
        return view_from_fields(oid, {**fields, "state": events[-1].state}, events, None)

    async def claim_due(self, city: str, now: int, lease_until: int, limit: int) -> list[OrderId]:
        result = await self._run("claim_due", [keys.timers(city)], [now, lease_until, limit])
        return [OrderId(text(x)) for x in cast(list[object], result)]

    async def _know_city(self, city: str) -> None:
        """Add ``city`` to the set the sweepers walk (once per process)."""
        if city not in self._cities:
            async with _translated():
                await self.redis.sadd(keys.CITIES, city)
            self._cities.add(city)

    async def cities(self) -> list[City]:
        async with _translated():
            members = await self.redis.smembers(keys.CITIES)
        return sorted(City(text(m)) for m in members)

    async def tick(
        self,
        oid: OrderId,
        now: int,
        radius_steps_m: Sequence[float],
        want: int,
        stale_before: int,
        lease: int,
    ) -> Tick:
        """Expire a due offer, then find up to ``want`` candidates in the
        smallest radius step that holds any, nearest first."""
        city = keys.city_of(oid) or ""
        result = cast(
            list[object],
            await self._run(
                "tick",
                [
                    keys.order(oid),
                    keys.timers(city),
                    keys.geo(city),
                    keys.seen(city),
                    keys.tried(oid),
                ],
                [oid, now, ",".join(f"{r:g}" for r in radius_steps_m), want, stale_before, lease],
            ),
        )
        action = text(result[0])
        if action != "search":
            return Tick(action)
        r = [text(x) for x in result]
        flat = r[10:]
        candidates = tuple(
            Candidate(WorkerId(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)
        )
        return Tick(
            "search", int(r[1]), r[2], r[3], OfferMode(r[4]), point(r[5], r[6]),
            point(r[7], r[8]), r[9] or None, candidates,
        )  # fmt: skip

    async def offer(
        self,
        oid: OrderId,
        dv: str,
        offer: OfferId,
        expires_at: int,
        now: int,
        frames: Iterable[tuple[str, bytes]],
    ) -> tuple[bool, list[str]]:
        """Offer to the workers with their frames; (made?, holders or [reason])."""
        city = keys.city_of(oid) or ""
        flat = [x for pair in frames for x in pair]
        result = cast(
            list[object],
            await self._run(
                "offer",
                [keys.order(oid), keys.timers(city), keys.tried(oid)],
                [oid, dv, offer, expires_at, now, *flat],
            ),
        )
        return result[0] == 1, [text(x) for x in result[1:]]

    async def settle(self, oid: OrderId, dv: str, now: int, retry_at: int | None) -> str:
        city = keys.city_of(oid) or ""
        result = await self._run(
            "settle",
            [keys.order(oid), keys.timers(city)],
            [oid, dv, now, "" if retry_at is None else retry_at],
        )
        return text(result)

    async def accept(self, offer: OfferId, wid: WorkerId, city: str, now: int) -> Accepted:
        oid = keys.order_of(offer) or OrderId("")
        r = await self._step(
            "accept",
            [keys.order(oid), keys.timers(city), keys.worker(city, wid), keys.tried(oid)],
            [oid, offer, wid, now],
        )
        pickup = Point(lat=float(r[2]), lng=float(r[3]))
        return Accepted(r[0], r[7], r[1], pickup, point(r[4], r[5]), r[6] or None)

    async def reject(
        self, offer: OfferId, wid: WorkerId, city: str, now: int, reason: str, lease: int
    ) -> tuple[str, bool]:
        """Reject; returns (worker state, whether the order needs dispatching now)."""
        oid = keys.order_of(offer) or OrderId("")
        state, next_step = await self._step(
            "reject",
            [keys.order(oid), keys.timers(city), keys.worker(city, wid), keys.tried(oid)],
            [oid, offer, wid, now, reason, lease],
        )
        return state, next_step == "redispatch"

    async def cancel(self, oid: OrderId, customer: str, now: int) -> str:
        city = keys.city_of(oid) or ""
        (state,) = await self._step(
            "cancel", [keys.order(oid), keys.timers(city)], [oid, customer, now]
        )
        return state

    async def progress(
        self, oid: OrderId, wid: WorkerId, city: str, event: str, now: int
    ) -> tuple[str, str]:
        """Apply a service step; returns (order state, worker state)."""
        order_state, worker_state = await self._step(
            "progress", [keys.order(oid), keys.worker(city, wid)], [oid, wid, event, now]
        )
        return order_state, worker_state

    # ------------------------------------------------------------ workers

    async def set_status(self, city: str, wid: WorkerId, event: str) -> str:
        (state,) = await self._step("set_status", [keys.worker(city, wid)], [event])
        return state

    async def connect(
        self, city: str, wid: WorkerId, node: str, skills: Sequence[str], capacity: int
    ) -> WorkerRecord:
        await self._know_city(city)
        marks = "," + ",".join(skills) + ","
        result = cast(
            list[object],
            await self._run("connect", [keys.worker(city, wid)], [wid, node, marks, capacity]),
        )
        frame = result[1]
        jobs = tuple(OrderId(j) for j in text(result[2]).split(",") if j)
        return WorkerRecord(text(result[0]), frame if isinstance(frame, bytes) else b"", jobs)

    async def disconnect(self, city: str, wid: WorkerId, node: str) -> None:
        await self._run(
            "disconnect", [keys.worker(city, wid), keys.geo(city), keys.seen(city)], [node, wid]
        )

    async def forget_stale(self, city: str, before: int, limit: int = 1000) -> int:
        """Drop up to ``limit`` positions last seen before ``before`` (ms)."""
        result = await self._run("forget_stale", [keys.geo(city), keys.seen(city)], [before, limit])
        return int(cast(int, result))

    async def write_positions(self, spots: Mapping[str, Mapping[str, Spot]]) -> None:
        """Write positions, given by city then worker: one GEOADD and one ZADD per city.

        The hot write of the server (every location report passes here), so
        the commands are packed by hiredis in C with coordinates pre-formatted
        (measured: 0.75 us per position, against ~3 us through redis-py's
        pure-Python packer) and sent as one write on one pooled connection.
        """
        packed: list[bytes] = []
        for city, batch in spots.items():
            geo: list[str | bytes] = ["GEOADD", keys.geo(city)]
            seen: list[str | int] = ["ZADD", keys.seen(city)]
            for worker_id, (lng, lat, at) in batch.items():
                geo += (b"%.6f" % lng, b"%.6f" % lat, worker_id)
                seen += (at, worker_id)
            # hiredis's stub types its argument as a 1-tuple; it takes any length.
            packed += (
                hiredis.pack_command(tuple(geo)),  # type: ignore[arg-type]
                hiredis.pack_command(tuple(seen)),  # type: ignore[arg-type]
            )
        await self._send_packed(packed)

    async def _send_packed(self, commands: list[bytes]) -> None:
        """Send pre-packed commands in one write and read every reply."""
        pool = self.redis.connection_pool
        async with _translated():
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.send_packed_command(b"".join(commands))
                for _ in commands:
                    await conn.read_response()  # raises on an error reply
            except BaseException:
                await conn.disconnect()  # unread replies would poison the next user
                raise
            finally:
                await pool.release(conn)

    async def publish(self, channel: str, payload: bytes) -> None:
        async with _translated():
            await self.redis.publish(channel, payload)

    async def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> None:
        async with _translated():
            pipe = self.redis.pipeline(transaction=False)
            for channel, payload in messages:
                pipe.publish(channel, payload)
            await pipe.execute()

    async def position(self, city: str, wid: str) -> Position | None:
        async with _translated():
            pipe = self.redis.pipeline(transaction=False)
            pipe.geopos(keys.geo(city), wid)
            pipe.zscore(keys.seen(city), wid)
            pos, at = await pipe.execute()
        if not pos or not pos[0] or at is None:
            return None
        lng, lat = pos[0]
        return Position(worker=wid, lat=float(lat), lng=float(lng), at=int(at))

    # ------------------------------------------------------------ reads

    async def order_fields(self, oid: OrderId) -> dict[str, str]:
        async with _translated():
            raw = await self.redis.hgetall(keys.order(oid))
        return decoded(raw)

    async def order_view(self, oid: OrderId, after: str | None = None) -> OrderView | None:
        """The order with its events after ``after`` (all if None): one round trip,
        two when a worker is assigned (its position)."""
        async with _translated():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(keys.order(oid))
            pipe.xrange(keys.events(oid), min=f"({after}" if after else "-")
            raw, entries = await pipe.execute()
        fields = decoded(raw)
        if not fields:
            return None
        events = [event(entry_id, f or {}) for entry_id, f in entries or []]
        worker = fields.get("worker") or None
        position = await self.position(fields["city"], worker) if worker else None
        return view_from_fields(oid, fields, events, position)

    async def jobs(self, oids: Iterable[OrderId]) -> list[dict[str, str]]:
        async with _translated():
            pipe = self.redis.pipeline(transaction=False)
            for oid in oids:
                pipe.hgetall(keys.order(oid))
            rows = await pipe.execute()
        return [decoded(row) for row in rows if row]

    # ------------------------------------------------------------ idempotency

    async def reserve_idempotency(
        self, customer: str, key: str, fingerprint: str, oid: OrderId, ttl_s: int
    ) -> tuple[str, OrderId]:
        """Bind ``key`` to (fingerprint, oid) unless bound; return the binding in force."""
        name = keys.idempotency(customer, key)
        value = f"{fingerprint} {oid}"
        async with _translated():
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(name, value, nx=True, ex=ttl_s)
            pipe.get(name)
            _, current = await pipe.execute()
        fp, _, bound = text(current).partition(" ")
        return fp, OrderId(bound)
