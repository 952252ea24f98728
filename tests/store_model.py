"""The model behind ``tests/store/test_model.py``: what the store should hold.

A small pure-Python picture of orders and workers that moves only through
``order_states.next_state`` and ``worker_states.next_state`` and predicts each
step the store makes (who is offered an order, when its timer is due, which
answer is refused and why), and :func:`read_city`, which reads the same
things back from Redis for the comparison. Time is pinned, so a failing
sequence replays exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import orjson
from hypothesis import strategies as st

from protocol.messages import OfferMode, OrderState, Point, WorkerState
from server.core import order_states, worker_states, workflow
from server.core.order_states import (
    ANSWER_REFUSALS,
    CREATED_EVENT,
    OFFER_OPEN,
    RECORDED_AS,
    SEARCHING,
    TERMINAL,
    OrderEventType,
)
from server.core.worker_states import CANDIDATE, WorkerEventType
from server.store import keys, records
from server.store.keys import OrderId
from server.store.redis_store import Store
from server.store.results import Spot

E = OrderEventType
WE = WorkerEventType
T = TypeVar("T")

T0 = 1_800_000_000_000  # ms
NODE_X, NODE_Y = "node-x", "node-y"
NODES = (NODE_X, NODE_Y)
WORKERS = ("w0", "w1", "w2", "w3")
MAX_ORDERS = 6
SKILL = "delivery"
CUSTOMER = "cust"
CAPACITY = 1
BROADCAST = 3
OFFER_TIMEOUT_MS, RETRY_MS, MAX_DISPATCH_MS = 10_000, 5_000, 60_000
MAX_AGE_MS, LEASE_MS, KEEP_MS = 45_000, 3_000, 3_600_000  # a lease unlike the retry interval
SEARCH_COUNT = 10
PICKUP = Point(lat=52.52, lng=13.40)
METRES_PER_DEGREE = 111_226.0  # of latitude, on Redis's earth
EVENT_OF = {recorded: event for event, recorded in RECORDED_AS.items()}
# The default workflow of an order by bare skill: each step enters the next state.
STEPS = tuple(step.name for step in workflow.DEFAULT_STEPS)

WORKER = st.sampled_from(WORKERS)
ORDER = st.integers(0, MAX_ORDERS - 1)  # an index into the orders made so far
PICK = st.integers(0, 3)  # an index into the workers that qualify for a rule
SLOT = st.integers(0, 7)  # how far from the pickup a worker reports itself
STATUS = st.sampled_from(["available", "available", "paused", "offline"])
RACES = (
    "cancel", "dispatch this", "offer refused", "dispatch another", "pause", "disconnect",
    "take over", "stall",
)  # fmt: skip


def distance_m(index: int, slot: int) -> int:
    """Distinct for every (worker, slot), all within the first 1 km radius step."""
    return 100 * (slot + 1) + 10 * index


def oid_of(offer: str) -> OrderId:
    """The order an offer id of this test names."""
    return OrderId(offer.partition("/")[0])


def spot(index: int, slot: int, at: int) -> Spot:
    lat = PICKUP.lat + distance_m(index, slot) / METRES_PER_DEGREE
    return (PICKUP.lng, lat, at)


# ---------------------------------------------------------------- the model


@dataclass
class OrderModel:
    oid: OrderId
    mode: OfferMode
    created: int
    state: OrderState = order_states.INITIAL
    events: list[str] = field(default_factory=lambda: [CREATED_EVENT])
    offers: int = 0  # offers made; the next one is attempt offers + 1 (the dv)
    offer: str | None = None
    holders: list[str] = field(default_factory=list)
    exp: int | None = None
    worker: str | None = None
    tried: set[str] = field(default_factory=set)
    timer: int | None = None


@dataclass(frozen=True)
class Plan:
    """What a dispatcher decided from a tick: its dispatch version, when to search again
    (None: give up), whom to offer the order and until when."""

    dv: int
    retry: int | None
    chosen: list[str]
    exp: int


@dataclass
class WorkerModel:
    index: int
    state: WorkerState = worker_states.INITIAL
    jobs: list[str] = field(default_factory=list)
    offer: str | None = None
    node: str | None = None
    session: str | None = None
    slot: int = 0
    seen: int | None = None  # when its position was stored; None: none (or forgotten)
    last_report: int | None = None  # when it last reported, and in which session
    reported_in: str | None = None


class Model:
    """What the store should hold. ``order_step`` and ``worker_step`` are the only places
    a modelled state changes, and they go through the core's tables."""

    def __init__(self, city: str) -> None:
        self.city = city
        self.now = T0
        self.live = set(NODES)
        self.orders: dict[OrderId, OrderModel] = {}
        self.workers = {wid: WorkerModel(i) for i, wid in enumerate(WORKERS)}

    def order_step(self, o: OrderModel, event: OrderEventType) -> None:
        o.state = order_states.next_state(o.state, event)
        o.events.append(RECORDED_AS[event])

    def worker_step(self, wid: str, event: WorkerEventType) -> None:
        w = self.workers[wid]
        w.state = worker_states.next_state(w.state, event, len(w.jobs))

    def release(self, wid: str, offer: str | None) -> None:
        if self.workers[wid].offer == offer:
            self.workers[wid].offer = None
            self.worker_step(wid, WE.RELEASE)

    def end_job(self, wid: str, oid: OrderId) -> None:
        self.workers[wid].jobs.remove(oid)
        self.worker_step(wid, WE.FREE)

    def indexed(self) -> set[str]:
        """Who should be in the search index: connected candidates with a live position."""
        return {
            wid
            for wid, w in self.workers.items()
            if w.node and w.seen is not None and w.state in CANDIDATE
        }

    # ------------------------------------------------------------ dispatch

    def create(self, oid: OrderId, mode: OfferMode) -> None:
        o = self.orders[oid] = OrderModel(oid, mode, self.now)
        self.order_step(o, E.DISPATCH)
        o.timer = self.now + LEASE_MS

    def candidates(self, o: OrderModel) -> list[str]:
        """The workers a search finds for ``o``, nearest first."""
        fresh = self.now - MAX_AGE_MS
        found = [
            wid
            for wid in self.indexed()
            if self.workers[wid].node in self.live
            and (self.workers[wid].seen or 0) >= fresh
            and wid not in o.tried
        ]
        return sorted(
            found, key=lambda wid: distance_m(self.workers[wid].index, self.workers[wid].slot)
        )

    def dispatch(self, oid: OrderId) -> None:
        """What ``Dispatcher.dispatch`` does: tick, then offer, retry later or give up."""
        o = self.orders[oid]
        for _ in range(3):  # again only if every chosen worker was taken meanwhile
            action, found = self.tick(o)
            if action != "search" or not self.carry_out(o, self.plan(o, found)):
                return

    def tick(self, o: OrderModel) -> tuple[str, list[str]]:
        """tick.lua: expire an offer whose time is up; ``done``, ``wait``, or ``search`` with
        the candidates, nearest first."""
        if o.state not in SEARCHING | OFFER_OPEN:
            o.timer = None
            return "done", []
        if o.state in OFFER_OPEN:
            assert o.exp is not None
            if self.now < o.exp:
                o.timer = o.exp
                return "wait", []
            self.expire(o)
        o.timer = self.now + LEASE_MS
        return "search", self.candidates(o)

    def plan(self, o: OrderModel, found: list[str]) -> Plan:
        """What the dispatcher decides from a tick, at the tick's time."""
        deadline = o.created + MAX_DISPATCH_MS
        retry = None if self.now >= deadline else min(self.now + RETRY_MS, deadline)
        chosen = found[: 1 if o.mode is OfferMode.SEQUENTIAL else BROADCAST]
        return Plan(o.offers, retry, chosen, min(self.now + OFFER_TIMEOUT_MS, deadline))

    def carry_out(self, o: OrderModel, plan: Plan) -> bool:
        """Settle or offer as planned; whether to tick again (nobody chosen could be offered)."""
        if plan.retry is None or not plan.chosen:
            self.settle(o, plan)
            return False
        return self.offer(o, plan) == "nobody"

    def settle(self, o: OrderModel, plan: Plan) -> bool:
        """settle.lua: retry at ``plan.retry``, or give up; whether it was stale."""
        if o.state not in SEARCHING or o.offers != plan.dv:
            return True
        if plan.retry is None:
            o.timer = None
            self.order_step(o, E.GIVE_UP)
        else:
            o.timer = plan.retry
        return False

    def offer(self, o: OrderModel, plan: Plan) -> str:
        """offer.lua: offer to the chosen who can still take it; '' when made, else why not."""
        if o.state not in SEARCHING or o.offers != plan.dv:
            return "stale"
        holders = [
            wid
            for wid in plan.chosen
            if self.workers[wid].node
            and wid not in o.tried
            and WE.OFFER in worker_states.TRANSITIONS[self.workers[wid].state]
        ]
        if not holders:
            return "nobody"
        o.offers += 1
        o.offer = f"{o.oid}/{o.offers}"
        for wid in holders:
            self.worker_step(wid, WE.OFFER)
            self.workers[wid].offer = o.offer
            o.tried.add(wid)
        o.holders, o.exp, o.timer = holders, plan.exp, plan.exp
        self.order_step(o, E.OFFER)
        return ""

    def expire(self, o: OrderModel) -> None:
        for wid in o.holders:
            self.release(wid, o.offer)
        o.offer, o.holders, o.exp = None, [], None
        self.order_step(o, E.EXPIRE)

    def claim_due(self) -> set[OrderId]:
        due = {oid for oid, o in self.orders.items() if o.timer is not None and o.timer <= self.now}
        for oid in due:
            self.orders[oid].timer = self.now + LEASE_MS
        return due

    # ------------------------------------------------------------ answers

    def answer_refusal(self, wid: str, offer: str) -> str | None:
        """Why an accept or reject of ``offer`` by ``wid`` is refused now, or None."""
        oid = keys.order_of(offer)
        o = self.orders.get(oid) if oid and keys.city_of(oid) == self.city else None
        if o is None or wid not in o.tried:
            return "offer_not_found"
        if o.state in ANSWER_REFUSALS:
            return ANSWER_REFUSALS[o.state]
        if o.offer != offer:
            return "offer_taken" if o.worker not in (None, wid) else "offer_expired"
        assert o.exp is not None
        if wid not in o.holders or self.now >= o.exp:
            return "offer_expired"
        return None

    def accept(self, wid: str, offer: str) -> None:
        o = self.orders[oid_of(offer)]
        for other in o.holders:
            if other != wid:
                self.release(other, offer)
        o.offer, o.holders, o.exp, o.timer, o.worker = None, [], None, None, wid
        self.order_step(o, E.ACCEPT)
        w = self.workers[wid]
        w.offer = None
        w.jobs.append(o.oid)
        self.worker_step(wid, WE.ACCEPT)
        if len(w.jobs) < CAPACITY:
            self.worker_step(wid, WE.FREE)

    def reject(self, wid: str, offer: str) -> bool:
        """Whether the order needs a search now (nobody holds the offer any more)."""
        o = self.orders[oid_of(offer)]
        self.release(wid, offer)
        return self.lose(o, wid, E.REJECT, self.now + LEASE_MS)

    def lose(self, o: OrderModel, wid: str, last: OrderEventType, due: int) -> bool:
        """``wid`` no longer holds ``o``'s offer: declined, or ``last`` if nobody does."""
        o.holders = [h for h in o.holders if h != wid]
        if o.holders:
            self.order_step(o, E.DECLINE)
            return False
        o.offer, o.exp, o.timer = None, None, due
        self.order_step(o, last)
        return True

    # ------------------------------------------------------------ customers and jobs

    def cancel_refusal(self, o: OrderModel, customer: str) -> str | None:
        if customer != CUSTOMER:
            return "order_not_found"
        return None if o.state in order_states.CUSTOMER_CANCELS else "not_cancellable"

    def cancel(self, o: OrderModel) -> None:
        if o.state in OFFER_OPEN:
            for wid in o.holders:
                self.release(wid, o.offer)
            o.offer, o.holders, o.exp = None, [], None
        elif o.worker:
            self.end_job(o.worker, o.oid)
        o.timer = None
        self.order_step(o, E.CANCEL)

    @staticmethod
    def pending(o: OrderModel) -> str | None:
        """The step an order by bare skill waits for: the one after its state."""
        if o.state not in order_states.WORKING:
            return None
        return STEPS[workflow.PHASES.index(o.state)]

    def progress_refusal(self, wid: str, o: OrderModel, step: str) -> str | None:
        if o.oid not in self.workers[wid].jobs or o.worker != wid:
            return "job_not_found"
        return None if step == self.pending(o) else "illegal_step"

    def progress(self, wid: str, o: OrderModel, step: str) -> None:
        self.order_step(o, order_states.ENTERED_BY[OrderState(step)])
        if o.state in TERMINAL:
            self.end_job(wid, o.oid)

    # ------------------------------------------------------------ connections and nodes

    def disconnect(self, wid: str, session: str) -> bool:
        w = self.workers[wid]
        if w.session != session:
            return False
        w.node = w.session = None  # its last position stays, until forget_stale
        return True

    def first_report(self, wid: str) -> bool:
        """Whether a node would call this report a first position: the session's first,
        or one after a silence of more than half the location age."""
        w = self.workers[wid]
        return (
            w.last_report is None
            or w.reported_in != w.session
            or self.now - w.last_report > MAX_AGE_MS / 2
        )

    def locate(self, wid: str, slot: int) -> None:
        """A report, from whichever node: the position is stored; the index follows."""
        w = self.workers[wid]
        w.slot, w.seen = slot, self.now
        w.last_report, w.reported_in = self.now, w.session

    def forget_stale(self) -> int:
        stale = [
            w
            for w in self.workers.values()
            if w.seen is not None and w.seen < self.now - MAX_AGE_MS
        ]
        for w in stale:
            w.seen = None
        return len(stale)

    def takeover(self, node: str) -> tuple[int, int]:
        """Disconnect ``node``'s workers; each offer one held is lost. (workers, offers)."""
        lost = [wid for wid, w in self.workers.items() if w.node == node]
        offers = 0
        for wid in lost:
            w = self.workers[wid]
            w.node = w.session = None
            if w.offer:
                offers += 1
                o = self.orders[oid_of(w.offer)]
                self.release(wid, w.offer)
                self.lose(o, wid, E.EXPIRE, self.now)
        return len(lost), offers


# ---------------------------------------------------------------- what Redis holds


@dataclass(frozen=True)
class Stored:
    """Every key of one city that the model speaks about, read in one round trip.
    A TTL is 1 (expiring), -1 (kept) or -2 (absent), so two reads compare equal."""

    orders: dict[str, dict[str, str]]
    events: dict[str, list[dict[str, str]]]
    tried: dict[str, set[str]]
    ttls: dict[str, tuple[int, int, int]]  # hash, events, tried
    workers: dict[str, dict[str, str]]
    worker_ttls: dict[str, int]
    free: set[str]
    timers: dict[str, int]
    seen: dict[str, int]
    routed: dict[str, set[str]]  # node -> the workers in its node set
    online: dict[str, str]  # the online index: worker -> '<node> <skills>'


def _list(reply: object) -> list[object]:
    return cast(list[object], reply or [])


def _hash(reply: object) -> dict[str, str]:
    return records.decoded(records.pairs(_list(reply)))


def _members(reply: object) -> set[str]:
    return {records.text(m) for m in _list(reply)}


def _scores(reply: object) -> dict[str, int]:
    flat = [records.text(v) for v in _list(reply)]
    return {flat[i]: int(float(flat[i + 1])) for i in range(0, len(flat), 2)}


def _ttl(reply: object) -> int:
    return max(-2, min(cast(int, reply), 1))


def _history(reply: object) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in orjson.loads(cast(bytes, e)).items()} for e in _list(reply)]


async def read_city(store: Store, city: str, oids: Sequence[OrderId]) -> Stored:
    """Read what Redis holds for ``city`` and these orders, in one round trip."""
    commands: list[tuple[object, ...]] = []
    for oid in oids:
        names = (keys.order(oid), keys.events(oid), keys.tried(oid))
        commands += [("HGETALL", names[0]), ("LRANGE", names[1], 0, -1), ("SMEMBERS", names[2])]
        commands += [("PTTL", name) for name in names]
    for wid in WORKERS:
        commands += [("HGETALL", keys.worker(city, wid)), ("PTTL", keys.worker(city, wid))]
    commands += [
        ("ZRANGE", keys.free(city, SKILL), 0, -1),
        ("ZRANGE", keys.timers(city), 0, -1, "WITHSCORES"),
        ("ZRANGE", keys.seen(city), 0, -1, "WITHSCORES"),
        *(("SMEMBERS", keys.node_workers(city, node)) for node in NODES),
        ("HGETALL", keys.online(city)),
    ]
    r = await store.call_many(commands)
    online = _hash(r.pop())
    o, w = r[: 6 * len(oids)], r[6 * len(oids) : -5]
    return Stored(
        orders={oid: _hash(o[6 * i]) for i, oid in enumerate(oids)},
        events={oid: _history(o[6 * i + 1]) for i, oid in enumerate(oids)},
        tried={oid: _members(o[6 * i + 2]) for i, oid in enumerate(oids)},
        ttls={
            oid: (_ttl(o[6 * i + 3]), _ttl(o[6 * i + 4]), _ttl(o[6 * i + 5]))
            for i, oid in enumerate(oids)
        },
        workers={wid: _hash(w[2 * i]) for i, wid in enumerate(WORKERS)},
        worker_ttls={wid: _ttl(w[2 * i + 1]) for i, wid in enumerate(WORKERS)},
        free=_members(r[-5]),
        timers=_scores(r[-4]),
        seen=_scores(r[-3]),
        routed={node: _members(reply) for node, reply in zip(NODES, r[-2:], strict=True)},
        online=online,
    )


def split(value: str | None) -> list[str]:
    """A comma list field as a list (empty for a missing field)."""
    return [v for v in (value or "").split(",") if v]


# ---------------------------------------------------------------- the machine
