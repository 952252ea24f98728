"""The Redis store against a model: hypothesis drives the real store through random
sequences of order, worker and node operations, and checks every step against a small
pure-Python model of what the store should hold.

The model moves orders and workers only through ``order_states.next_state`` and
``worker_states.next_state``, so a step the store makes that the core's tables do not
allow fails the model as well as the invariants. It predicts each step exactly: whom an
order is offered to (the nearest eligible workers: positions are at distinct distances),
when its timer is due, which answer is refused and with which code. After every step the
invariants read Redis directly. Time is pinned, so a failing sequence replays exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import ClassVar, cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from protocol.messages import CreateOrder, OfferMode, OrderState, WorkerState
from server.core import order_states, policy, ranking, worker_states
from server.core.errors import ClientError, IllegalTransition
from server.core.order_states import (
    CREATED_EVENT,
    OFFER_OPEN,
    RECORDED_AS,
    SEARCHING,
    TERMINAL,
    TRANSITIONS,
)
from server.core.worker_states import CANDIDATE, STATUS_EVENTS
from server.process.settings import Settings
from server.services.dispatcher import Dispatcher
from server.store import keys, records
from server.store.keys import OrderId, WorkerId
from server.store.redis_store import Store
from server.store.results import Accepted
from tests.store_model import (
    BROADCAST,
    CAPACITY,
    CUSTOMER,
    EVENT_OF,
    KEEP_MS,
    LEASE_MS,
    MAX_AGE_MS,
    MAX_DISPATCH_MS,
    MAX_ORDERS,
    NODE_X,
    NODE_Y,
    NODES,
    OFFER_TIMEOUT_MS,
    ORDER,
    PICK,
    PICKUP,
    RACES,
    RETRY_MS,
    SEARCH_COUNT,
    SKILL,
    SLOT,
    STATUS,
    STEPS,
    WORKER,
    WORKERS,
    E,
    Model,
    OrderModel,
    Stored,
    T,
    oid_of,
    read_city,
    split,
    spot,
)
from tests.support import one_tag, scratch_city


class StoreMachine(RuleBasedStateMachine):
    """One city, four workers on two nodes, up to six orders, one pinned clock."""

    redis_url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.city = scratch_city()
        self.model = Model(self.city)
        self.store = Store(one_tag(self.redis_url), pinned=lambda: self.model.now)
        config = Settings(
            cities=(self.city,), offer_timeout_s=OFFER_TIMEOUT_MS / 1000, broadcast_size=BROADCAST,
            retry_interval_s=RETRY_MS / 1000, max_dispatch_s=MAX_DISPATCH_MS / 1000,
            location_max_age_s=MAX_AGE_MS / 1000, lease_ms=LEASE_MS, retention_s=KEEP_MS // 1000,
            search_count=SEARCH_COUNT,
        )  # fmt: skip
        self.dispatcher = Dispatcher(self.store, config, lambda: sorted(self.model.live))
        self.sessions = self.sweeps = 0
        self._stored: Stored | None = None

    def teardown(self) -> None:
        self.loop.run_until_complete(self.dispatcher.drain())
        self.loop.run_until_complete(self.store.link.aclose())
        self.loop.run_until_complete(asyncio.sleep(0))  # let the transport finish closing
        self.loop.close()

    # ------------------------------------------------------------ running and reading

    def run(self, step: Awaitable[T]) -> T:
        """Run one store call, and the dispatches it started, to the end."""
        self._stored = None
        result = self.loop.run_until_complete(step)
        self.loop.run_until_complete(self.dispatcher.drain())
        return result

    def stored(self) -> Stored:
        """What Redis holds now (read once per step, shared by the invariants)."""
        if self._stored is None:
            read = read_city(self.store, self.city, list(self.model.orders))
            self._stored = self.loop.run_until_complete(read)
        return self._stored

    def refused(self, step: Awaitable[object], code: str) -> None:
        """``step`` is refused with ``code`` and changes nothing."""
        before = self.stored()
        with pytest.raises(ClientError) as err:
            self.run(step)
        assert err.value.code == code
        assert self.stored() == before

    def order(self, index: int) -> OrderModel:
        return list(self.model.orders.values())[index % len(self.model.orders)]

    def holders(self) -> list[str]:
        return [wid for wid, w in self.model.workers.items() if w.offer]

    def busy(self) -> list[str]:
        return [wid for wid, w in self.model.workers.items() if w.jobs]

    def searching(self) -> list[OrderModel]:
        """The orders a tick would search for now: those with candidates, if any has."""
        due = [
            o
            for o in self.model.orders.values()
            if o.state in SEARCHING or (o.state in OFFER_OPEN and (o.exp or 0) <= self.model.now)
        ]
        return [o for o in due if self.model.candidates(o)] or due

    def moments(self) -> list[int]:
        """The times ahead that matter to some order: an offer's expiry, a timer, a deadline."""
        ahead = {t for o in self.model.orders.values() for t in (o.exp, o.timer) if t}
        ahead |= {o.created + MAX_DISPATCH_MS for o in self.model.orders.values()}
        return sorted(t for t in ahead if t > self.model.now)

    # ------------------------------------------------------------ operations, checked

    def connect_worker(self, wid: str, node: str) -> None:
        self.sessions += 1
        session = f"s{self.sessions}"
        w = self.model.workers[wid]
        connecting = self.store.connect(
            self.city, WorkerId(wid), node, session, (SKILL,), CAPACITY, KEEP_MS
        )
        record = self.run(connecting)
        w.node, w.session = node, session
        assert (record.state, list(record.jobs)) == (w.state, w.jobs)

    def report(self, wid: str, node: str, slot: int) -> None:
        w = self.model.workers[wid]
        spots = {self.city: {wid: spot(w.index, slot, self.model.now)}}
        first = {self.city: [wid]} if self.model.first_report(wid) else {}
        on_job = [wid] if w.jobs else []
        self.run(self.store.locate(spots, {wid: (SKILL,)}, first, on_job))  # ``node``: no part
        self.model.locate(wid, slot)

    def change_status(self, w: str, status: str) -> None:
        worker = self.model.workers[w]
        step = self.dispatcher.set_status(WorkerId(w), self.city, status)
        try:
            after = worker_states.next_state(worker.state, STATUS_EVENTS[status], len(worker.jobs))
        except IllegalTransition as exc:
            self.refused(step, exc.code)
            return
        assert self.run(step) == after
        self.model.worker_step(w, STATUS_EVENTS[status])

    def disconnect_worker(self, w: str, current: bool) -> None:
        worker = self.model.workers[w]
        node, session = worker.node or NODE_X, (worker.session if current else None) or "s0"
        done = self.run(self.store.disconnect(self.city, WorkerId(w), node, session))
        assert done == self.model.disconnect(w, session)

    def new_order(self, mode: OfferMode, dispatch_now: bool) -> None:
        oid = OrderId(f"{self.city}.order{len(self.model.orders):04d}")
        body = CreateOrder(city=self.city, skill=SKILL, pickup=PICKUP, mode=mode)
        if dispatch_now:
            assert self.run(self.dispatcher.create_order(oid, CUSTOMER, body)) is not None
        else:
            fields = records.order_fields(oid, CUSTOMER, body, mode, SKILL)
            assert self.run(self.store.create_order(oid, fields, LEASE_MS, KEEP_MS)) is not None
        self.model.create(oid, mode)
        if dispatch_now:
            self.model.dispatch(oid)

    def dispatch_order(self, o: OrderModel) -> None:
        self.run(self.dispatcher.dispatch(o.oid))
        self.model.dispatch(o.oid)

    def cancel_order(self, o: OrderModel, customer: str) -> None:
        code = self.model.cancel_refusal(o, customer)
        if code is not None:
            self.refused(self.dispatcher.cancel(o.oid, "customer", customer), code)
            return
        self.run(self.dispatcher.cancel(o.oid, "customer", customer))
        self.model.cancel(o)

    def answer(self, w: str, offer: str, accept: bool) -> None:
        """``w`` accepts or rejects ``offer``: refused as the model says, or done."""
        code = self.model.answer_refusal(w, offer)
        if accept:
            step: Awaitable[object] = self.dispatcher.accept(WorkerId(w), self.city, offer)
        else:
            step = self.dispatcher.reject(WorkerId(w), self.city, offer, "busy")
        if code is not None:
            self.refused(step, code)
            return
        result = self.run(step)
        oid = oid_of(offer)
        if accept:
            self.model.accept(w, offer)
            got = cast(Accepted, result)
            assert (got.order_state, got.worker_state) == (
                self.model.orders[oid].state, self.model.workers[w].state,
            )  # fmt: skip
            return
        again = self.model.reject(w, offer)
        assert result == self.model.workers[w].state
        if again:  # nobody holds the offer now: the dispatcher searched again
            self.model.dispatch(oid)

    def progress(self, w: str, o: OrderModel, name: str) -> None:
        step = self.dispatcher.progress(WorkerId(w), self.city, o.oid, name)
        code = self.model.progress_refusal(w, o, name)
        if code is not None:
            self.refused(step, code)
            return
        done = self.run(step)
        self.model.progress(w, o, name)
        assert (done.order_state, done.worker_state) == (o.state, self.model.workers[w].state)

    def interfere(self, race: str, o: OrderModel, chosen: str | None) -> None:
        """One step by someone else, between a tick and what the dispatcher does next."""
        if race == "cancel":
            self.cancel_order(o, CUSTOMER)
        elif race in ("dispatch this", "offer refused"):  # another node dispatches it too
            self.dispatch_order(o)
            if race == "offer refused" and o.holders:  # and that offer is over already
                self.answer(o.holders[0], o.offer or "", accept=False)
        elif race == "dispatch another":  # which may take the chosen worker
            self.dispatch_order(self.order(list(self.model.orders).index(o.oid) + 1))
        elif race == "pause" and chosen:
            self.change_status(chosen, "paused")
        elif race == "disconnect" and chosen:
            self.disconnect_worker(chosen, current=True)
        elif race == "take over":
            self.model.live.discard(NODE_Y)
            self.take_over_node_y()
        elif race == "stall":  # the dispatching node stalls past the offer's expiry
            self.model.now += OFFER_TIMEOUT_MS

    # ------------------------------------------------------------ rules: orders

    @initialize(
        homes=st.lists(st.sampled_from(NODES), min_size=4, max_size=4),
        slots=st.lists(SLOT, min_size=4, max_size=4),
        modes=st.lists(st.sampled_from(OfferMode), max_size=3),
    )
    def start(self, homes: list[str], slots: list[int], modes: list[OfferMode]) -> None:
        """Four available workers, reporting from their nodes; the first orders, offered."""
        for wid, node, slot in zip(WORKERS, homes, slots, strict=True):
            self.connect_worker(wid, node)
            self.change_status(wid, "available")
            self.report(wid, node, slot)
        for mode in modes:
            self.new_order(mode, dispatch_now=True)

    @precondition(lambda self: len(self.model.orders) < MAX_ORDERS)
    @rule(mode=st.sampled_from(OfferMode), dispatch_now=st.booleans())
    def create_order(self, mode: OfferMode, dispatch_now: bool) -> None:
        """Create an order; dispatch it at once (as the node that took it does) or leave it
        to the sweeper (as if that node died first)."""
        self.new_order(mode, dispatch_now)

    @precondition(lambda self: bool(self.model.orders))
    @rule(order=ORDER, dispatch_now=st.booleans())
    def create_again(self, order: int, dispatch_now: bool) -> None:
        """A retried create of an existing order changes nothing."""
        o = self.order(order)
        body = CreateOrder(city=self.city, skill=SKILL, pickup=PICKUP, mode=o.mode)
        if dispatch_now:
            step: Awaitable[object] = self.dispatcher.create_order(o.oid, CUSTOMER, body)
        else:
            fields = records.order_fields(o.oid, CUSTOMER, body, o.mode, SKILL)
            step = self.store.create_order(o.oid, fields, LEASE_MS, KEEP_MS)
        before = self.stored()
        assert self.run(step) is None
        assert self.stored() == before

    @precondition(lambda self: bool(self.model.orders))
    @rule(order=ORDER)
    def dispatch(self, order: int) -> None:
        """Tick some order (ended, offered or searching) and do what the tick calls for."""
        self.dispatch_order(self.order(order))

    @precondition(lambda self: bool(self.searching()))
    @rule(order=ORDER, race=st.sampled_from(RACES), pick=PICK)
    def dispatch_raced(self, order: int, race: str, pick: int) -> None:
        """Something lands between a search for an order and its offer (or settle); the
        offer and settle scripts resolve the race."""
        o = self.searching()[order % len(self.searching())]
        ticking = self.store.tick(
            o.oid, self.dispatcher.radius_steps_m, SEARCH_COUNT, MAX_AGE_MS, LEASE_MS,
            sorted(self.model.live),
        )  # fmt: skip
        tick = self.run(ticking)
        action, found = self.model.tick(o)
        assert (tick.action, [c.worker_id for c in tick.candidates]) == (action, found)
        if action != "search":
            return
        plan = self.model.plan(o, found)
        chosen = ranking.choose(tick.candidates, mode=tick.mode, broadcast_size=BROADCAST).chosen
        retry = policy.next_search(tick.created_at, tick.now, self.dispatcher.timing)
        assert ([c.worker_id for c in chosen], retry) == (plan.chosen, plan.retry)
        self.interfere(race, o, plan.chosen[pick % len(plan.chosen)] if chosen else None)
        if retry is None or not chosen:
            settled = self.run(self.store.settle(o.oid, tick.dv, retry))
            assert bool(settled.stale) == self.model.settle(o, plan)
            return
        made = self.run(self.dispatcher._offer(o.oid, tick, chosen))
        reason = self.model.offer(o, plan)
        expected = (0, reason, []) if reason else (1, "", o.holders)
        assert (made.made, made.reason, made.holders) == expected
        if reason == "nobody":  # the dispatcher ticks again
            self.dispatch_order(o)

    @rule()
    def sweep(self) -> None:
        """A sweeper round: claim the due orders and dispatch them one after the other; every
        other round, then forget the workers not seen lately (searches skip them meanwhile)."""
        claimed = self.run(self.store.claim_due(self.city, LEASE_MS, 200))
        assert set(claimed) == self.model.claim_due()
        for o in [o for oid, o in self.model.orders.items() if oid in claimed]:
            self.dispatch_order(o)
        self.sweeps += 1
        if self.sweeps % 2 == 0:
            forgot = self.run(self.store.forget_stale(self.city, MAX_AGE_MS))
            assert forgot == self.model.forget_stale()

    @rule(ms=st.integers(0, 20_000), pick=st.one_of(st.none(), PICK), before=st.booleans())
    def advance(self, ms: int, pick: int | None, before: bool) -> None:
        """Time passes: ``ms``, or (``pick``) up to a moment that matters to some order, or
        (``before``) to the millisecond before it."""
        moments = self.moments()
        if pick is None or not moments:
            self.model.now += ms
        else:
            self.model.now = moments[pick % len(moments)] - before

    @precondition(lambda self: bool(self.model.orders))
    @rule(order=ORDER, own=st.booleans(), job=st.booleans())
    def cancel(self, order: int, own: bool, job: bool) -> None:
        """A customer cancels some order, or (``job``) one that a worker is on, if any;
        ``own``: the order's customer, else someone else."""
        jobs = [o for o in self.model.orders.values() if o.worker and o.state not in TERMINAL]
        o = jobs[order % len(jobs)] if job and jobs else self.order(order)
        self.cancel_order(o, CUSTOMER if own else "someone-else")

    # ------------------------------------------------------------ rules: answers and jobs

    @precondition(lambda self: bool(self.holders()))
    @rule(pick=PICK, accept=st.booleans(), late=st.sampled_from([False, False, True]))
    def answer_held(self, pick: int, accept: bool, late: bool) -> None:
        """A worker accepts or rejects the offer it holds; a late answer arrives at the
        offer's expiry, before any tick has expired it."""
        w = self.holders()[pick % len(self.holders())]
        offer = self.model.workers[w].offer or ""
        if late:
            self.model.now = max(self.model.now, self.model.orders[oid_of(offer)].exp or 0)
        self.answer(w, offer, accept)

    @precondition(lambda self: bool(self.model.orders))
    @rule(w=WORKER, order=ORDER, attempt=st.integers(0, 3), accept=st.booleans())
    def answer_any(self, w: str, order: int, attempt: int, accept: bool) -> None:
        """A worker answers some attempt of some order, maybe never offered to it, or (0)
        an id that names no order of this city."""
        garbage = ("nonsense", "elsewhere.0123456789/1", f"{self.city}.zzzzzzzz/1")
        offer = f"{self.order(order).oid}/{attempt}" if attempt else garbage[order % 3]
        self.answer(w, offer, accept)

    @precondition(lambda self: bool(self.busy()))
    @rule(pick=PICK)
    def next_step(self, pick: int) -> None:
        """A worker on a job reports its next service step."""
        w = self.busy()[pick % len(self.busy())]
        o = self.model.orders[OrderId(self.model.workers[w].jobs[0])]
        pending = self.model.pending(o)
        assert pending is not None
        self.progress(w, o, pending)

    @precondition(lambda self: bool(self.model.orders))
    @rule(w=WORKER, order=ORDER, step=st.sampled_from(STEPS))
    def progress_any(self, w: str, order: int, step: str) -> None:
        """A worker reports some step of some order, maybe not its job."""
        self.progress(w, self.order(order), step)

    # ------------------------------------------------------------ rules: workers and nodes

    @rule(w=WORKER, status=STATUS)
    def set_status(self, w: str, status: str) -> None:
        """A worker asks to be available, paused or offline."""
        self.change_status(w, status)

    @rule(w=WORKER, current=st.booleans())
    def disconnect(self, w: str, current: bool) -> None:
        """The worker's socket closes: its current session's, or one it replaced."""
        self.disconnect_worker(w, current)

    @rule(w=WORKER, node=st.sampled_from(NODES), slot=st.one_of(st.none(), SLOT))
    def connect(self, w: str, node: str, slot: int | None) -> None:
        """A new session (replacing any other), then maybe a location. A node that stopped
        beating may still take sockets."""
        self.connect_worker(w, node)
        if slot is not None:
            self.report(w, node, slot)

    @rule(w=WORKER, slot=SLOT, own_node=st.booleans())
    def locate(self, w: str, slot: int, own_node: bool) -> None:
        """A location report from the worker's node, or a late one from another node."""
        node = self.model.workers[w].node or NODE_X
        self.report(w, node if own_node else next(n for n in NODES if n != node), slot)

    @precondition(lambda self: NODE_Y in self.model.live)
    @rule()
    def node_y_dies(self) -> None:
        """node-y stops beating: its workers stay routed to it but get no offers."""
        self.model.live.discard(NODE_Y)

    @rule()
    def take_over_node_y(self) -> None:
        """node-y is taken over: its workers are disconnected and lose their offers. It was
        dead, or only stalled (then it goes on with sockets the store no longer routes to)."""
        result = self.run(self.store.takeover(self.city, NODE_Y))
        assert (result.workers, result.offers) == self.model.takeover(NODE_Y)
        self.model.live.add(NODE_Y)

    # ------------------------------------------------------------ invariants

    @invariant()
    def store_matches_model(self) -> None:
        """Every order, worker, timer, index entry and node set is what the model says."""
        s = self.stored()
        for oid, o in self.model.orders.items():
            f = s.orders[oid]
            found = (
                f["state"],
                f.get("offer"),
                split(f.get("holders")),
                f.get("exp"),
                f.get("worker"),
            )
            assert found == (o.state, o.offer, o.holders, o.exp and str(o.exp), o.worker), oid
            assert int(f["dv"]) == o.offers
            assert [e["type"] for e in s.events[oid]] == o.events, oid
            assert (s.tried[oid], s.timers.get(oid)) == (o.tried, o.timer), oid
        for wid, w in self.model.workers.items():
            h = s.workers[wid]
            found_w = (h["state"], split(h.get("jobs")), h.get("offer"), h.get("node") or None)
            assert found_w == (w.state, w.jobs, w.offer, w.node), wid
            assert (h.get("sid") or None, s.seen.get(wid)) == (w.session, w.seen), wid
        assert s.free == self.model.indexed()
        assert s.routed == {
            n: {wid for wid, w in self.model.workers.items() if w.node == n} for n in NODES
        }
        assert s.online == {
            wid: f"{w.node} {SKILL}" for wid, w in self.model.workers.items() if w.node
        }

    @invariant()
    def no_order_has_two_workers(self) -> None:
        """At most one worker was ever assigned an order, and it is the order's worker."""
        s = self.stored()
        for oid, history in s.events.items():
            assigned = {e["worker"] for e in history if e["type"] == RECORDED_AS[E.ACCEPT]}
            assert len(assigned) <= 1, oid
            assert s.orders[oid].get("worker") == next(iter(assigned), None), oid

    @invariant()
    def no_worker_over_capacity(self) -> None:
        """No worker holds more jobs than its capacity."""
        for wid, h in self.stored().workers.items():
            assert len(split(h.get("jobs"))) <= int(h["capacity"]), wid

    @invariant()
    def offered_workers_hold_open_offers(self) -> None:
        """A worker is offered exactly while it holds the open offer of an order."""
        s = self.stored()
        for wid, h in s.workers.items():
            if h["state"] == WorkerState.OFFERED:
                offer = h.get("offer")
                order = s.orders.get(keys.order_of(offer or "") or "", {})
                assert order.get("state") in OFFER_OPEN and order.get("offer") == offer, wid
                assert wid in split(order.get("holders")), wid
            else:
                assert "offer" not in h, wid
        for oid, f in s.orders.items():
            for wid in split(f.get("holders")):
                assert s.workers[wid].get("state") == WorkerState.OFFERED, (oid, wid)

    @invariant()
    def histories_follow_the_table(self) -> None:
        """Each order's history starts created, steps only along TRANSITIONS, in time order,
        and ends in the order's state."""
        s = self.stored()
        for oid, history in s.events.items():
            first, *rest = history
            assert (first["type"], first["state"]) == (CREATED_EVENT, order_states.INITIAL)
            state, at = OrderState(first["state"]), int(first["at"])
            for e in rest:
                assert TRANSITIONS[state].get(EVENT_OF[e["type"]]) == e["state"], (oid, state, e)
                assert at <= int(e["at"]) <= self.model.now, (oid, e)
                state, at = OrderState(e["state"]), int(e["at"])
            assert s.orders[oid]["state"] == state, oid

    @invariant()
    def index_holds_exactly_the_candidates(self) -> None:
        """free:<skill> holds exactly the connected candidates with a known position."""
        s = self.stored()
        expected = {
            wid
            for wid, h in s.workers.items()
            if h.get("node") and h["state"] in CANDIDATE and wid in s.seen
        }
        assert s.free == expected

    @invariant()
    def searching_orders_have_timers(self) -> None:
        """An order that needs a worker, or whose offer is open, has a timer."""
        s = self.stored()
        for oid, f in s.orders.items():
            if f["state"] in SEARCHING | OFFER_OPEN:
                assert oid in s.timers, oid

    @invariant()
    def ended_orders_expire(self) -> None:
        """An ended order's hash, history and tried set (if any was offered) have a TTL;
        a live order's have none."""
        s = self.stored()
        for oid, f in s.orders.items():
            ttl = 1 if f["state"] in TERMINAL else -1
            assert s.ttls[oid] == (ttl, ttl, ttl if s.tried[oid] else -2), oid

    @invariant()
    def departed_workers_expire(self) -> None:
        """A worker's record has a TTL exactly while it is disconnected and holds nothing."""
        s = self.stored()
        for wid, h in s.workers.items():
            holding = h.get("node") or h.get("jobs") or h.get("offer")
            assert s.worker_ttls[wid] == (-1 if holding else 1), wid


def test_store_follows_the_model(redis_url: str) -> None:
    """Random sequences of store operations keep Redis equal to the model, invariants true."""
    StoreMachine.redis_url = redis_url
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=60, stateful_step_count=50, deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )  # fmt: skip
