"""Operations on orders: create, the dispatch steps (claim, tick, offer,
settle, accept, reject), cancel, workflow steps, a booked job's begin, the
reads of orders, and the customer's idempotency keys and rate limit.

Each is one script or one pipelined round trip through the engine
(``engine.py``); the
dispatch hot path (tick, offer, accept, reject) adds nothing to it. Imports
nothing above ``server/store/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from protocol.messages import OrderView, Point, Slot
from server.core.earnings import DAY_MS
from server.core.ranking import Candidate
from server.store import keys, records, replies
from server.store.arguments import CancelArgs, RejectArgs, TickArgs, WorkflowArgs, packed
from server.store.engine import listed
from server.store.keys import OfferId, OrderId, WorkerId
from server.store.layout import OrderField
from server.store.records import decoded, events, pairs, text, view_from_fields
from server.store.results import Accepted, Pay, Policy, Tick, WorkflowStep
from server.store.worker_ops import WorkerOps


def _point(lat: float | None, lng: float | None) -> Point | None:
    return None if lat is None or lng is None else Point(lat=lat, lng=lng)


class OrderOps(WorkerOps):
    """The store's operations on orders. They stand on the workers' (an order's
    view shows its worker's position; an offer declares its takers' keys)."""

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

    async def order_fields(self, oid: OrderId) -> dict[str, str]:
        return await self.hash_of(keys.order(oid))

    async def order_view(self, oid: OrderId, after: str | None = None) -> OrderView | None:
        """The order with its events after ``after`` (all if None): one round trip,
        two when a worker is assigned (its position)."""
        raw, entries = await self.call_many(
            [("HGETALL", keys.order(oid)), ("LRANGE", keys.events(oid), 0, -1)]
        )
        fields = decoded(pairs(listed(raw)))
        if not fields:
            return None
        history = events(cast(list[bytes], entries), after)
        worker = fields.get(OrderField.WORKER) or None
        where = await self.position(fields[OrderField.CITY], worker) if worker else None
        return view_from_fields(oid, fields, history, where)

    async def jobs(self, oids: Iterable[OrderId]) -> list[dict[str, str]]:
        commands = [("HGETALL", keys.order(o)) for o in oids]
        rows = await self.call_many(commands) if commands else []
        return [decoded(pairs(listed(row))) for row in rows if row]

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
