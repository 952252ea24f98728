"""The Redis store: runs the scripts and reads records, nothing more.

Every method is one round trip (a script, or commands pipelined on the one
connection). Redis and connection errors are translated here, at the edge,
into :class:`StoreUnavailable`; a refusal by a script comes back as
:class:`Refused` with the protocol's error code. Deciding *what* to do is the
dispatcher's job (``server/dispatcher.py``).

Time: every script reads Redis ``TIME`` itself, so deadlines, leases and
claims come from one clock whatever the nodes' and phones' clocks say. A
test may pin the time (``pinned``) to play a race at fixed times.
:meth:`Store.now_ms` is the node's estimate of that clock (its monotonic
clock plus the offset measured by :meth:`Store.sync_clock` at every
heartbeat), used where no script runs: "last seen" of location reports,
token expiry, a ping's ``server_time``, a fix's age.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, TypeVar, cast

import msgspec

from protocol.catalogue import Ranking
from protocol.errors import message
from protocol.messages import Job, OfferMode, OrderView, Point, Position, Slot
from server.core.booking import Booked
from server.core.earnings import DAY_MS
from server.core.errors import ClientError, ServerFault
from server.core.ranking import Candidate
from server.store import keys, records, replies
from server.store.arguments import (
    CancelArgs,
    ConnectArgs,
    RejectArgs,
    TickArgs,
    WorkflowArgs,
    packed,
)
from server.store.cluster import Link
from server.store.keys import OfferId, OrderId, WorkerId
from server.store.layout import OrderField, WorkerField
from server.store.mux import MuxError, ReplyError
from server.store.records import decoded, events, pairs, position, text, view_from_fields
from server.store.replies import Refusable
from server.store.scripts import STREAM_KEEP_MS, sources

R = TypeVar("R", bound=replies.Reply)
F = TypeVar("F", bound=Refusable)


class StoreUnavailable(ServerFault):
    """Redis could not be reached in time, or answered with an error."""


class Refused(ClientError):
    """A script refused the change; ``code`` says why."""

    def __init__(self, code: str, text: str | None = None) -> None:
        super().__init__(code, text or message(code))


class Stale(Exception):
    """A compare-and-set script found the order moved on since the caller read
    it (its reply's code ``stale``): read it again and retry. Never reaches a
    client, so it is no :class:`ClientError` and has no error code."""


class Tick(NamedTuple):
    """What a claimed order needs: ``done``, ``wait`` or ``search`` (with the
    order's details, the time of the tick and the candidates, nearest first)."""

    action: str
    now: int = 0
    created_at: int = 0
    dv: str = ""
    skill: str = ""
    mode: OfferMode = OfferMode.SEQUENTIAL
    pickup: Point | None = None
    dropoff: Point | None = None
    note: str | None = None
    candidates: tuple[Candidate, ...] = ()
    policy: Policy | None = None  # what the order's category pinned
    pinned: records.Pinned | None = None
    step: str = ""  # action 'step': the pending step whose timer ran out
    ranking: Ranking | None = None  # the weights its category pinned, if it set any
    slot: Slot | None = None  # a booked order's slot
    urgent: bool = False  # taken back from a worker away when its booked job began


class WorkflowStep(NamedTuple):
    """What a workflow step does, as ``workflow.lua`` applies it: who (``by``,
    ``actor``), where the caller saw the order (``state``, ``pending``), the
    core event and the step recorded, and what comes next; ``frame`` is sent
    to the worker's app ('' for none); ``arrival_ms``, when the step makes the
    order ``arrived``, is the category's promise to time the arrival against
    (from the accept), for the worker's on-time figure; ``pay``, when the step
    completes an order with a price, what its worker earns."""

    by: str
    actor: str
    state: str
    pending: str
    event: str
    step: str
    reason: str
    next_pending: str
    timer_ms: int | None
    data: str
    cancel: bool
    frame: str
    arrival_ms: int | None = None
    pay: Pay | None = None


class Pay(NamedTuple):
    """What a step pays the order's worker: entries ``reason=amount,...`` in the
    minor units of ``currency`` (``server/core/earnings.py``); for a completed
    job, ``per_minute``, the rate of its time part, which the script works out
    from its own clock (the instant the history records the completion at)."""

    currency: str
    lines: str
    per_minute: int = 0


class Policy(NamedTuple):
    """The dispatch policy an order's category pinned on it."""

    offer_timeout_ms: int
    max_dispatch_ms: int
    broadcast_size: int


class Accepted(NamedTuple):
    """A successful accept: the worker's new state and the job's details."""

    now: int
    worker_state: str
    order_state: str
    created_at: int
    job: Job
    order: dict[str, str]  # the order's hash as the accept left it


class WorkerRecord(NamedTuple):
    """A worker as its socket opens: state, pending offer frame, jobs, until
    when an operator paused it, and its booked jobs not begun."""

    state: str
    offer_frame: str
    jobs: tuple[OrderId, ...]
    paused_until: int | None = None
    booked: tuple[OrderId, ...] = ()


# Where and when a worker was: (lng, lat, phone's time in ms). A plain tuple:
# one is made per location report, and a NamedTuple costs measurably more.
Spot = tuple[float, float, int]


# How many times a script may answer "need" before the call gives up: each round
# reads more of what it plans from (takeover needs two: workers, then their offers).
PLAN_ROUNDS = 5
# The most workers' skills and orders' skills the store remembers to declare keys with.
REMEMBERED = 200_000


def _needed(raw: object) -> list[str]:
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


def _values(reply: object) -> list[object]:
    """A multi-bulk reply as a list (an empty one for nil)."""
    return cast(list[object], reply or [])


def _point(lat: float | None, lng: float | None) -> Point | None:
    return None if lat is None or lng is None else Point(lat=lat, lng=lng)


class Store:
    """Scripts and reads over one link to Redis (one server, or a cluster)."""

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
            need = _needed(raw)
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

    def adopt_clock(self, other: Store) -> None:
        """Take ``other``'s estimate of Redis time (a second link to the same Redis)."""
        self._offset_ms = other._offset_ms

    def now_ms(self) -> int:
        """This node's estimate of Redis time (or the pinned time in tests)."""
        if self.pinned is not None:
            return self.pinned()
        return int(time.monotonic() * 1000 + self._offset_ms)

    # ------------------------------------------------------------ orders

    async def create_order(
        self, oid: OrderId, fields: dict[str, str], lease_ms: int, keep_ms: int
    ) -> OrderView | None:
        """Create the order; its view as created, or None if it existed already."""
        flat = [x for pair in fields.items() for x in pair]
        result = await self.script(
            "create_order", keys.order_keys(oid), [oid, lease_ms, keep_ms, *flat],
            replies.CreateReply,
        )  # fmt: skip
        if skill := fields.get(OrderField.SKILL):
            self._order_skill.put(oid, (skill,))
        if not result.created:
            return None
        history = events(result.events)
        state = {**fields, OrderField.STATE: history[-1].state, OrderField.CREATED: str(result.now)}
        return view_from_fields(oid, state, history, None)

    async def claim_due(self, city: str, lease_ms: int, limit: int) -> list[OrderId]:
        result = await self.script(
            "claim_due", [keys.timers(city)], [lease_ms, limit], replies.ClaimReply
        )
        return [OrderId(oid) for oid in result.due]

    async def tick(
        self,
        oid: OrderId,
        radius_steps_m: Sequence[float],
        want: int,
        max_age_ms: int,
        lease_ms: int,
        live_nodes: Iterable[str],
    ) -> Tick:
        """Expire a due offer, then find up to ``want`` candidates in the
        smallest radius step that holds any, nearest first."""
        city = keys.city_of(oid) or ""
        r = await self.script(
            "tick", self._order_keys(oid),
            [packed(TickArgs(oid, ",".join(f"{m:g}" for m in radius_steps_m), want, max_age_ms,
                             lease_ms, ",".join(live_nodes)))],
            replies.TickReply,
        )  # fmt: skip
        if r.action != "search":
            return Tick(r.action, step=r.step)
        self._order_skill.put(oid, (r.skill,))
        for wid, skills in zip(r.ids, r.skills, strict=True):
            self._skills.put(f"{city}/{wid}", tuple(skills.split(",")) if skills else ())
        candidates = tuple(Candidate(WorkerId(w), d) for w, d in zip(r.ids, r.dists, strict=True))
        pin = records.pinned({
            OrderField.CATEGORY: r.cat, OrderField.CATEGORY_VERSION: str(r.catv),
            OrderField.ATTRIBUTES: r.attrs, OrderField.QUOTE: r.quote, OrderField.STEPS: r.steps,
        })  # fmt: skip
        policy = Policy(r.otms, r.maxms, r.bsize) if pin else None
        return Tick(
            "search", r.now, r.created, r.dv, r.skill, r.mode, Point(lat=r.plat, lng=r.plng),
            _point(r.dlat, r.dlng), r.note or None, candidates, policy, pin,
            ranking=records.ranking_of(r.rank),
            slot=Slot(start=r.sls, end=r.sle) if r.sls is not None and r.sle is not None else None,
            urgent=bool(r.prio),
        )  # fmt: skip

    async def offer(
        self, oid: OrderId, dv: str, offer: OfferId, expires_at: int,
        frames: Iterable[tuple[str, float, bytes]],
    ) -> replies.OfferReply:  # fmt: skip
        """Offer to the workers (each with its distance to the pickup in m, and its
        frame): made, with the holders, or why not."""
        city = keys.city_of(oid) or ""
        each = list(frames)
        flat = [x for one in each for x in one]
        r = await self.script(
            "offer", self._order_keys(oid) + self._worker_keys(city, (w for w, _, _ in each)),
            [oid, dv, offer, expires_at, *flat], replies.OfferReply,
        )  # fmt: skip
        if r.made:
            self._holders.put(oid, tuple(r.holders))
        return r

    async def settle(self, oid: OrderId, dv: str, retry_at: int | None) -> replies.SettleReply:
        """Search again at ``retry_at``, or give up (``None``)."""
        return await self.script(
            "settle", keys.order_keys(oid),
            [oid, dv, "" if retry_at is None else retry_at], replies.SettleReply,
        )  # fmt: skip

    async def accept(self, offer: OfferId, wid: WorkerId, city: str) -> Accepted:
        oid = keys.order_of(offer) or OrderId("")
        r = await self.step(
            "accept",
            self._answer_keys(oid, city, wid),
            [oid, offer, wid],
            replies.AcceptReply,
        )
        order = decoded(pairs(cast(list[object], r.order)))
        return Accepted(r.now, r.worker_state, r.order_state, r.created, records.job(order),
                        order)  # fmt: skip

    async def reject(
        self, offer: OfferId, wid: WorkerId, city: str, reason: str, lease_ms: int
    ) -> tuple[str, bool]:
        """Reject; returns (worker state, whether the order needs dispatching now)."""
        oid = keys.order_of(offer) or OrderId("")
        r = await self.step(
            "reject",
            self._answer_keys(oid, city, wid),
            [packed(RejectArgs(oid, offer, wid, reason, lease_ms))],
            replies.RejectReply,
        )
        return r.worker_state, bool(r.redispatch)

    async def cancel(
        self, oid: OrderId, by: str, actor: str, done: int, fee: int = 0,
        pay: Pay | None = None, worker: str | None = None,
    ) -> str:  # fmt: skip
        """Cancel as ``by`` (``customer`` or ``operator``) if the order has still
        ``done`` workflow steps done (else ``stale``), paying its ``worker`` what
        ``pay`` says of the fee; the state after it."""
        paid = self._pay_keys(oid, worker) if pay else []
        result = await self.step(
            "cancel", self._order_keys(oid) + paid,
            [packed(CancelArgs(oid, by, actor, done, fee, *((pay.currency, pay.lines) if pay
                                                            else ("", ""))))],
            replies.StepReply,
        )  # fmt: skip
        return result.state

    def _pay_keys(self, oid: OrderId, worker: str | None) -> list[str]:
        """What a script paying ``worker`` for ``oid`` declares besides: its ledger and
        the city's day book of today (a script whose clock is on the next day
        asks for that one)."""
        city = keys.city_of(oid) or ""
        if not worker:
            return []
        return [keys.ledger(city, worker), keys.book(city, self.now_ms() // DAY_MS)]

    async def workflow_step(
        self, oid: OrderId, worker: str | None, step: WorkflowStep
    ) -> replies.WorkflowReply:
        """Do an order's pending step as ``step`` says, if the order is still in
        the state and at the step the caller saw (else ``illegal_step``)."""
        city = keys.city_of(oid) or ""
        workers = self._worker_keys(city, [worker]) if worker else []
        paid = self._pay_keys(oid, worker) if step.pay else []
        return await self.step(
            "workflow", keys.order_keys(oid) + workers + paid,
            [packed(WorkflowArgs(
                order_id=oid, by=step.by, actor=step.actor, state=step.state,
                pending=step.pending, event=step.event, step=step.step, reason=step.reason,
                next_pending=step.next_pending, data=step.data, frame=step.frame,
                timer_ms=step.timer_ms, cancel=step.cancel, arrival_ms=step.arrival_ms,
                currency=step.pay.currency if step.pay else "",
                pay=step.pay.lines if step.pay else "",
                per_minute=step.pay.per_minute if step.pay else 0,
            ))],
            replies.WorkflowReply,
        )  # fmt: skip

    # ------------------------------------------------------------ workers

    async def begin(
        self, oid: OrderId, worker: str, frame: str, first_step: str, lease_ms: int
    ) -> replies.BeginReply:
        """Begin a booked job whose time came (its worker reminded with ``frame``),
        or take it back from its worker when it is away."""
        city = keys.city_of(oid) or ""
        return await self.script(
            "begin", keys.order_keys(oid) + self._worker_keys(city, [worker]),
            [oid, frame, first_step, lease_ms], replies.BeginReply,
        )  # fmt: skip

    async def schedules(self, city: str, wids: Sequence[str]) -> dict[str, list[Booked]]:
        """Each worker's booked jobs accepted and not begun."""
        raw = await self.call_many([("HVALS", keys.schedule(city, w)) for w in wids])
        found: dict[str, list[Booked]] = {}
        for wid, values in zip(wids, raw, strict=True):
            found[wid] = []
            for value in _values(values):
                start, end, lat, lng = text(value).split()
                found[wid].append(
                    Booked(int(start), int(end), Point(lat=float(lat), lng=float(lng)))
                )
        return found

    async def set_status(self, city: str, wid: WorkerId, event: str) -> str:
        result = await self.step(
            "set_status", self._own_keys(city, wid), [wid, event], replies.StepReply
        )
        return result.state

    async def connect(
        self, city: str, wid: WorkerId, node: str, session: str, skills: Sequence[str],
        capacity: int, keep_ms: int,
    ) -> WorkerRecord:  # fmt: skip
        """Route the worker to ``node``'s ``session`` (the newest session wins);
        ``worker_blocked`` if an operator blocked it."""
        self._skills.put(f"{city}/{wid}", tuple(skills))
        r = await self.script(
            "connect", [*self._own_keys(city, wid), keys.node_workers(city, node)],
            [packed(ConnectArgs(wid, node, session, ",".join(skills), capacity, keep_ms))],
            replies.ConnectReply,
        )  # fmt: skip
        if r.blocked:
            raise Refused("worker_blocked")
        return WorkerRecord(r.state, r.offer_frame, tuple(OrderId(j) for j in r.jobs),
                            r.paused_until, tuple(OrderId(j) for j in r.booked))  # fmt: skip

    async def worker_record(self, city: str, wid: WorkerId) -> WorkerRecord:
        """The worker's state, pending offer frame and jobs, read without changing them."""
        raw = await self.call(
            "HMGET",
            keys.worker(city, wid),
            WorkerField.STATE,
            WorkerField.OFFER_FRAME,
            WorkerField.JOBS,
        )
        state, frame, jobs = (text(v) if v is not None else "" for v in _values(raw))
        return WorkerRecord(state, frame, tuple(OrderId(j) for j in jobs.split(",") if j))

    async def disconnect(self, city: str, wid: WorkerId, node: str, session: str) -> bool:
        """Unroute the worker unless a newer session holds it; whether it was unrouted."""
        result = await self.script(
            "disconnect", [*self._own_keys(city, wid), keys.node_workers(city, node)],
            [wid, node, session], replies.DoneReply,
        )  # fmt: skip
        return bool(result.done)

    async def takeover(self, city: str, dead: str) -> replies.TakeoverReply:
        """Disconnect the workers a dead node held in ``city``, withdrawing their offers."""
        return await self.script(
            "takeover", [keys.node_workers(city, dead), *keys.city_keys(city), keys.timers(city)],
            [dead], replies.TakeoverReply,
        )  # fmt: skip

    async def forget_stale(self, city: str, max_age_ms: int, limit: int = 1000) -> int:
        """Take up to ``limit`` workers not seen for ``max_age_ms`` out of the search index."""
        result = await self.script(
            "forget_stale", [keys.seen(city), *keys.city_keys(city), keys.fix_at(city)],
            [max_age_ms, limit], replies.CountReply,
        )  # fmt: skip
        return result.count

    async def locate(
        self,
        spots: Mapping[str, Mapping[str, Spot]],
        skills: Mapping[str, Sequence[str]],
        first: Mapping[str, Iterable[str]],
        on_job: Iterable[str] = (),
    ) -> None:
        """Store positions, given by city then worker: the hot write of the server (every
        location report passes here), so it is a few bulk commands in one write however
        many workers, no script. Per city: "last seen" (stamped with this node's
        estimate of Redis time), the position, the phone's time of workers ``on_job``
        (whose position their customers see), ``GEOADD XX`` on each skill's search
        index (moving only workers already in it: a late report cannot bring back a
        worker that left), and ``index.lua`` for the workers giving a ``first``
        position (a new session, or one after a silence), which puts them in the index
        if they belong there."""
        now = self.now_ms()
        shown = set(on_job)
        commands: list[tuple[object, ...]] = []
        indexing: list[tuple[int, list[str], list[str]]] = []
        for city, batch in spots.items():
            seen_args: list[object] = []
            pos_args: list[object] = []
            at_args: list[object] = []
            by_skill: dict[str, list[object]] = {}
            for worker_id, (lng, lat, at) in batch.items():
                x, y = b"%.6f" % lng, b"%.6f" % lat
                seen_args += (now, worker_id)
                pos_args += (x, y, worker_id)
                if worker_id in shown:
                    at_args += (at, worker_id)
                for skill in skills.get(worker_id, ()):
                    by_skill.setdefault(skill, []).extend((x, y, worker_id))
            commands += [("ZADD", keys.seen(city), *seen_args),
                         ("GEOADD", keys.pos(city), *pos_args)]  # fmt: skip
            if at_args:
                commands.append(("ZADD", keys.fix_at(city), *at_args))
            for skill, members in by_skill.items():
                commands.append(("GEOADD", keys.free(city, skill), "XX", *members))
            newcomers = list(first.get(city, ()))
            if newcomers:
                for wid in newcomers:
                    self._skills.put(f"{city}/{wid}", tuple(skills.get(wid, ())))
                index_keys = [keys.seen(city), *self._worker_keys(city, newcomers)]
                indexing.append((len(commands), index_keys, newcomers))
                commands.append(self._evalsha("index", index_keys, newcomers))
        if commands:
            answers = await self.call_many(commands, ("index",))
            for at, index_keys, newcomers in indexing:
                if need := _needed(answers[at]):  # skills changed since this node knew them
                    await self._run("index", index_keys + need, newcomers)

    async def position(self, city: str, wid: str) -> Position | None:
        where, seen, at = await self.call_many([
            ("GEOPOS", keys.pos(city), wid),
            ("ZSCORE", keys.seen(city), wid),
            ("ZSCORE", keys.fix_at(city), wid),
        ])  # fmt: skip
        spot = _values(where)[0] if _values(where) else None
        if not spot or seen is None:
            return None
        lng, lat = (float(text(v)) for v in _values(spot))
        found = {"lng": str(lng), "lat": str(lat), "seen": text(seen), "at": text(at or seen)}
        return position(wid, found)

    # ------------------------------------------------------------ nodes

    async def heartbeat(self, node: str, ttl_ms: int) -> replies.HeartbeatReply:
        """Record that ``node`` is alive; the live and the dead nodes."""
        return await self.script("heartbeat", [keys.NODES], [node, ttl_ms], replies.HeartbeatReply)

    async def claim_takeover(self, dead: str, me: str, ttl_ms: int) -> bool:
        """Whether this node may take over ``dead`` (one node at a time does)."""
        return await self.call("SET", keys.takeover(dead), me, "NX", "PX", ttl_ms) == b"OK"

    async def node_is_stale(self, node: str, stale_before: int) -> bool:
        """Whether ``node``'s last beat is still older than ``stale_before`` (ms)."""
        score = await self.call("ZSCORE", keys.NODES, node)
        return score is not None and float(text(score)) < stale_before

    async def forget_node(self, node: str, stale_before: int | None = None) -> None:
        """Drop ``node`` from the registry: after a clean stop, or (``stale_before``) after
        a takeover, and then only if it has not beaten again since it was judged dead."""
        if stale_before is None:
            await self.call_many([("ZREM", keys.NODES, node), ("DEL", keys.takeover(node))])
            return
        await self.script("forget_node", [keys.NODES], [node, stale_before], replies.DoneReply)
        await self.call("DEL", keys.takeover(node))

    # ------------------------------------------------------------ pub/sub

    async def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> None:
        command = "SPUBLISH" if self.sharded else "PUBLISH"
        commands = [(command, channel, data) for channel, data in messages]
        if commands:
            await self.call_many(commands)

    # ------------------------------------------------------------ reads

    async def order_fields(self, oid: OrderId) -> dict[str, str]:
        return await self.hash_of(keys.order(oid))

    async def hash_of(self, key: str) -> dict[str, str]:
        """A hash's fields and values as text (empty when there is no such key)."""
        return decoded(pairs(_values(await self.call("HGETALL", key))))

    async def order_view(self, oid: OrderId, after: str | None = None) -> OrderView | None:
        """The order with its events after ``after`` (all if None): one round trip,
        two when a worker is assigned (its position)."""
        raw, entries = await self.call_many(
            [("HGETALL", keys.order(oid)), ("LRANGE", keys.events(oid), 0, -1)]
        )
        fields = decoded(pairs(_values(raw)))
        if not fields:
            return None
        history = events(cast(list[bytes], entries), after)
        worker = fields.get(OrderField.WORKER) or None
        where = await self.position(fields[OrderField.CITY], worker) if worker else None
        return view_from_fields(oid, fields, history, where)

    async def jobs(self, oids: Iterable[OrderId]) -> list[dict[str, str]]:
        commands = [("HGETALL", keys.order(o)) for o in oids]
        rows = await self.call_many(commands) if commands else []
        return [decoded(pairs(_values(row))) for row in rows if row]

    # ------------------------------------------------------------ customers

    async def reserve_idempotency(
        self, customer: str, key: str, fingerprint: str, oid: OrderId, ttl_s: int
    ) -> tuple[str, OrderId]:
        """Bind ``key`` to (fingerprint, oid) unless bound; return the binding in force."""
        name = keys.idempotency(customer, key)
        _, current = await self.call_many(
            [
                ("SET", name, f"{fingerprint} {oid}", "NX", "EX", ttl_s),
                ("GET", name),
            ]
        )
        fp, _, bound = text(current).partition(" ")
        return fp, OrderId(bound)

    async def take_order_token(self, customer: str, rate_per_s: float, burst: int) -> int:
        """Take one order from ``customer``'s rate limit: 0 if allowed, else ms to wait."""
        result = await self.script(
            "rate", [keys.order_rate(customer)], [rate_per_s, burst], replies.RateReply
        )
        return 0 if result.allowed else max(1, result.retry_ms)
