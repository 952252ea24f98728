"""The script engine: how the store talks to Redis, whatever it asks.

It owns the round trip (:meth:`Engine.call_many`, one write per call), the
scripts' SHAs and their reload after NOSCRIPT, the plan/need rounds (a script
that needs keys its caller could not know answers ``need`` before it writes,
and runs again with them), the decoding of replies into ``replies`` Structs,
the clock and what the store remembers to declare (workers' skills, orders'
skills, offers' holders). The domain operations (``order_ops``,
``worker_ops``, ``node_ops``) are built on it; it knows none of them.

Errors: Redis and connection errors (:class:`~server.store.mux.MuxError`) are
translated here, at the edge, into :class:`StoreUnavailable`; a script's
refusal comes back as :class:`~server.core.errors.Refused` with the protocol's
error code, and a compare-and-set that found the order moved on as
:class:`Stale`::

    ServerFault (server.core.errors)
    └── StoreUnavailable     Redis unreachable, too slow, or answered an error
    Stale                    read the order again and retry; never a client's

Time: every script reads Redis ``TIME`` itself, so deadlines, leases and
claims come from one clock whatever the nodes' and phones' clocks say. A
test may pin the time (``pinned``) to play a race at fixed times.
:meth:`Engine.now_ms` is the node's estimate of that clock (its monotonic
clock plus the offset measured by :meth:`Engine.sync_clock` at every
heartbeat), used where no script runs: "last seen" of location reports,
token expiry, a ping's ``server_time``, a fix's age.

Imports nothing above ``server/store/`` (``ruff.toml`` bans it).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar, cast

import msgspec

from server.core.errors import Refused, ServerFault
from server.store import keys, replies
from server.store.cluster import Link
from server.store.keys import OrderId
from server.store.mux import MuxError, ReplyError
from server.store.records import decoded, pairs, text
from server.store.replies import Refusable
from server.store.scripts import STREAM_KEEP_MS, sources

R = TypeVar("R", bound=replies.Reply)
F = TypeVar("F", bound=Refusable)


class StoreUnavailable(ServerFault):
    """Redis could not be reached in time, or answered with an error."""


class Stale(Exception):
    """A compare-and-set script found the order moved on since the caller read
    it (its reply's code ``stale``): read it again and retry. Never reaches a
    client, so it is no :class:`~server.core.errors.ClientError` and has no error code."""


# How many times a script may answer "need" before the call gives up: each round
# reads more of what it plans from (takeover needs two: workers, then their offers).
PLAN_ROUNDS = 5
# The most workers' skills and orders' skills the store remembers to declare keys with.
REMEMBERED = 200_000


def needed(raw: object) -> list[str]:
    """The keys a script's ``need`` answer asks for (none for any other answer)."""
    if isinstance(raw, list) and len(raw) == 2 and raw[0] == b"need":
        return [text(k) for k in cast(list[bytes], raw[1])]
    return []


class _Memo:
    """A bounded memory of what the store last learned: forgotten whole when full
    (a miss costs one more round trip, never a wrong answer)."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self.items: dict[str, tuple[str, ...]] = {}

    def get(self, key: str) -> tuple[str, ...]:
        return self.items.get(key, ())

    def put(self, key: str, value: tuple[str, ...]) -> None:
        if len(self.items) >= self.limit:
            self.items.clear()
        self.items[key] = value


def listed(reply: object) -> list[object]:
    """A multi-bulk reply as a list (an empty one for nil)."""
    return cast(list[object], reply or [])


class Engine:
    """Runs scripts and commands over one link to Redis (one server, or a cluster)."""

    def __init__(
        self, link: Link, pinned: Callable[[], int] | None = None,
        stream_keep_ms: int = STREAM_KEEP_MS,
    ) -> None:  # fmt: skip
        self.link = link
        self.pinned = pinned
        self.stream_keep_ms = stream_keep_ms
        self.sharded = False
        self.publish_sharded(False)
        self._loading: dict[str, asyncio.Future[object]] = {}
        # What the scripts need declared and the caller cannot see: each worker's
        # skills (its search index keys), each order's skill and offer holders.
        self._skills = _Memo()
        self._order_skill = _Memo()
        self._holders = _Memo()
        self.replans: collections.Counter[str] = collections.Counter()  # need answers, by script
        # Redis time minus this node's monotonic clock: the wall clock until the first
        # sync_clock (the node syncs before it serves, and at every heartbeat).
        self._offset_ms = time.time() * 1000 - time.monotonic() * 1000

    def publish_sharded(self, sharded: bool) -> None:
        """Publish with SPUBLISH (sharded pub/sub, Redis Cluster 7+) or PUBLISH, in the
        scripts and in :meth:`publish_many`."""
        self.sharded = sharded
        self._sources = sources(sharded, self.stream_keep_ms)
        self._shas = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in self._sources.items()
        }

    def script_id(self, name: str) -> str:
        """The SHA1 by which Redis knows script ``name`` (as SLOWLOG and EVALSHA show it)."""
        return self._shas[name]

    # ------------------------------------------------------------ calls

    async def call(self, *command: object) -> object:
        """One command; its reply, or :class:`StoreUnavailable`."""
        return (await self.call_many([command]))[0]

    async def call_many(
        self, commands: Sequence[tuple[object, ...]], scripts: Iterable[str] = ()
    ) -> list[object]:
        """Commands sent in one write; their replies, or :class:`StoreUnavailable`. If
        Redis lost one of ``scripts`` (the ones the commands run), they are loaded and
        the commands sent again: every command here may run twice."""
        answers = await self._send(commands, scripts)
        for command, answer in zip(commands, answers, strict=True):
            if isinstance(answer, ReplyError):
                raise StoreUnavailable(f"redis refused {command[0]}: {answer}")
        return answers

    async def call_raw(self, commands: Sequence[tuple[object, ...]]) -> list[object]:
        """Commands sent in one write; their replies, a refused command's as its
        :class:`ReplyError` (for the caller to tell apart), or :class:`StoreUnavailable`."""
        return await self._send(commands, ())

    async def _send(
        self, commands: Sequence[tuple[object, ...]], scripts: Iterable[str]
    ) -> list[object]:
        """The replies to ``commands`` (ReplyErrors among them), loading ``scripts`` and
        sending again if Redis answered NOSCRIPT; a lost connection is StoreUnavailable."""
        names = tuple(scripts)
        try:
            answers = await self.link.call_many(commands)
            if names and any(isinstance(a, ReplyError) and str(a).startswith("NOSCRIPT")
                             for a in answers):  # fmt: skip
                await asyncio.gather(*(self._load(name) for name in names))
                answers = await self.link.call_many(commands)
        except MuxError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return answers

    async def _load(self, name: str) -> None:
        """Load script ``name``; callers that find it missing at once share one load."""
        loading = self._loading.get(name)
        if loading is None:
            loading = asyncio.ensure_future(self.link.call("SCRIPT", "LOAD", self._sources[name]))
            self._loading[name] = loading
            loading.add_done_callback(lambda _: self._loading.pop(name, None))
        await asyncio.shield(loading)

    async def _run_many(
        self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[object]]]
    ) -> list[object]:
        """Run script ``name`` once per (keys, args), in one write, loading it if Redis
        lost it; ARGV[1] of each is the pinned time."""
        answers = await self._send([self._evalsha(name, k, a) for k, a in calls], (name,))
        for answer in answers:
            if isinstance(answer, ReplyError):
                raise StoreUnavailable(f"redis script {name} failed: {answer}")
        return answers

    def _evalsha(
        self, name: str, keys_: Sequence[str], args: Sequence[object]
    ) -> tuple[object, ...]:
        """The command that runs script ``name`` (ARGV[1] is the pinned time)."""
        clock = "" if self.pinned is None else self.pinned()
        return ("EVALSHA", self._shas[name], len(keys_), *keys_, clock, *args)

    async def _run(self, name: str, keys_: Sequence[str], args: Sequence[object]) -> object:
        """Run script ``name``, declaring ``keys_``; when it answers that it needs keys
        the caller could not know (an offer's holders, a worker's skills), it is run
        again with those too. It asks before it writes anything."""
        declared = list(dict.fromkeys(keys_))
        for _ in range(PLAN_ROUNDS):
            raw = (await self._run_many(name, [(declared, args)]))[0]
            need = needed(raw)
            if not need:
                return raw
            self.replans[name] += 1
            declared += need
        raise StoreUnavailable(f"redis script {name} still needs keys after {PLAN_ROUNDS} rounds")

    def _decoded(self, name: str, raw: object, shape: type[R]) -> R:
        try:
            return replies.decode(raw, shape)
        except msgspec.ValidationError as exc:
            raise StoreUnavailable(f"redis script {name} answered {raw!r:.200}: {exc}") from exc

    async def script(
        self, name: str, keys_: Sequence[str], args: Sequence[object], shape: type[R]
    ) -> R:
        """Run script ``name`` on ``keys_``; its reply as ``shape``."""
        return self._decoded(name, await self._run(name, keys_, args), shape)

    async def step(
        self, name: str, keys_: Sequence[str], args: Sequence[object], shape: type[F]
    ) -> F:
        """A compare-and-set script: its reply, or :class:`Refused` with its code
        (:class:`Stale` when the script found the order moved on)."""
        result = await self.script(name, keys_, args, shape)
        if result.code == "stale":
            raise Stale(name)
        if not result.ok:
            raise Refused(result.code)
        return result

    def _keys_of(self, city: str, wid: str) -> list[str]:
        """One worker's record, performance counters and schedule, and the search
        index of each skill the store knows it has."""
        return [keys.worker(city, wid), keys.performance(city, wid), keys.schedule(city, wid),
                *(keys.free(city, s) for s in self._skills.get(f"{city}/{wid}"))]  # fmt: skip

    def _worker_keys(self, city: str, wids: Iterable[str]) -> list[str]:
        """What a script on workers declares: the city's indexes, then each worker's keys."""
        return keys.city_keys(city) + [k for wid in wids for k in self._keys_of(city, wid)]

    def _own_keys(self, city: str, wid: str) -> list[str]:
        """A worker's own keys, its record first (the scripts read it as KEYS[1])."""
        return self._keys_of(city, wid) + keys.city_keys(city)

    def _answer_keys(self, oid: OrderId, city: str, wid: str) -> list[str]:
        """What an accept or reject declares: order, timers, worker, tried (KEYS[1..4]),
        then the rest."""
        order_, timers, tried, history, stream = keys.order_keys(oid)
        return [order_, timers, keys.worker(city, wid), tried, history, stream,
                *self._order_extras(oid), *self._worker_keys(city, [wid])]  # fmt: skip

    def _order_keys(self, oid: OrderId) -> list[str]:
        """An order's keys, then what the store knows the script will need besides."""
        return keys.order_keys(oid) + self._order_extras(oid)

    def _order_extras(self, oid: OrderId) -> list[str]:
        """The search index of an order's skill and its offer's holders' keys, as far
        as the store knows them."""
        city = keys.city_of(oid) or ""
        skill = [keys.free(city, s) for s in self._order_skill.get(oid)]
        return skill + self._worker_keys(city, self._holders.get(oid))

    # ------------------------------------------------------------ the clock and health

    async def ping(self) -> None:
        await self.call("PING")

    async def server_version(self) -> tuple[int, ...]:
        info = text(await self.call("INFO", "server"))
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                return tuple(int(p) for p in line.partition(":")[2].split(".")[:3])
        raise StoreUnavailable("INFO did not report redis_version")

    async def sync_clock(self) -> int:
        """Read Redis ``TIME`` and remember this node's offset from it; returns the time."""
        before = time.monotonic()
        seconds, micros = cast(list[bytes], await self.call("TIME"))
        after = time.monotonic()
        redis_ms = int(seconds) * 1000 + int(micros) // 1000
        self._offset_ms = redis_ms - (before + after) * 500
        return redis_ms

    def adopt_clock(self, other: Engine) -> None:
        """Take ``other``'s estimate of Redis time (a second link to the same Redis)."""
        self._offset_ms = other._offset_ms

    def now_ms(self) -> int:
        """This node's estimate of Redis time (or the pinned time in tests)."""
        if self.pinned is not None:
            return self.pinned()
        return int(time.monotonic() * 1000 + self._offset_ms)

    # ------------------------------------------------------------ pub/sub

    async def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> None:
        command = "SPUBLISH" if self.sharded else "PUBLISH"
        commands = [(command, channel, data) for channel, data in messages]
        if commands:
            await self.call_many(commands)

    # ------------------------------------------------------------ reads

    async def hash_of(self, key: str) -> dict[str, str]:
        """A hash's fields and values as text (empty when there is no such key)."""
        return decoded(pairs(listed(await self.call("HGETALL", key))))
