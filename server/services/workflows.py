"""Running orders' workflows: a step done by the worker, the customer, an
operator, or the clock; and cancelling by the category's rules.

Theory of operation
-------------------
An order pins its workflow when it is created (the category's steps, the
ones its attributes skip, the first one due); an order by bare skill walks
the default steps ``arrived``, ``started``, ``completed``. Doing a step is
two round trips: read the order, let :func:`server.core.workflow.perform`
decide what the step does (its core event, the step due next and its timer,
or the cancel a rejected approval leads to), then ``workflow.lua`` applies
that only if the order is still in the state and at the step that was read.
Two parties doing the same step at once (a customer approving as the
approval times out) race in that script: the first wins, the other is told
``illegal_step``.

*Timers* of approvals and system steps live in the city's ``timers`` sorted
set with the offer timeouts, so they survive a node's death: the sweeper of
whichever node claims the order finds the step due and does it as the
``system`` (an approval decided by its ``on_timeout``).

*Cancelling* by the customer reads the steps done and the category's rules
(:func:`server.core.workflow.cancel_fee`): refused once ``customer_until``
is done, with the fee once ``free_until`` is; the script checks that no step
was done in between, else it reads again.

*Pay* is decided here too, from the rules the order pinned
(:mod:`server.core.earnings`): the step that completes an order pays its
worker its share, distance and time parts, and a customer's cancel for a fee
pays the worker its share of the fee, each in the same script as the step
(once per order and reason, whoever does the step and however often it is
tried).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec

from protocol.codec import encode
from protocol.messages import Job, JobCancelled, JobUpdated
from server.core import earnings, workflow
from server.core.errors import ClientError, Refused
from server.core.order_states import TERMINAL, WORKING, OrderState, next_state
from server.core.workflow import Actor, Decision, Move
from server.services.figures import Figures
from server.store import keys, records
from server.store.engine import Stale
from server.store.keys import OrderId
from server.store.layout import OrderField as F
from server.store.redis_store import Store
from server.store.results import Pay, WorkflowStep

log = logging.getLogger(__name__)

CANCEL_ROUNDS = 3
KNOWN = 20_000  # orders whose fields a node remembers for their workers' next step
_encode = msgspec.json.Encoder().encode


class StepDone(NamedTuple):
    """A step done: the order's and its worker's states, and the job as it is now
    (None once it ended)."""

    order_state: str
    worker_state: str
    job: Job | None


def _pay(currency: str, lines: Sequence[earnings.Line], per_minute: int = 0) -> Pay:
    """Earnings entries as a paying script takes them (and a job's time rate)."""
    text = ",".join(f"{reason.value}={amount}" for reason, amount in lines)
    return Pay(currency, text, per_minute)


def _frame(fields: Mapping[str, str], move: Move, by: Actor, state: OrderState) -> str:
    """What the worker's app is told when someone else did a step of its job."""
    if by == "worker":
        return ""
    if move.cancel:
        step = next(s for s in records.steps_of(fields) if s.name == move.step)
        owner = step.by if by == "system" else by  # whose approval it was
        cancelled = JobCancelled(
            order_id=fields[F.ID], reason="customer" if owner == "customer" else "operator"
        )
        return encode(cancelled).decode()
    job = records.job(records.stepped(fields, state.value, move.pending))
    return encode(JobUpdated(job=job, event=move.step, reason=move.reason)).decode()


class Workflows:
    """Does orders' workflow steps through the store. One per node."""

    def __init__(self, store: Store, figures: Figures) -> None:
        self.store = store
        self.figures = figures
        # The order as this node last saw it (at the accept, after each step), so
        # that a worker's next step needs no read first. Stale is harmless: the
        # script refuses a step from a state the order left, and the step is
        # tried again on the order read afresh. Forgotten whole when full.
        self._known: dict[str, dict[str, str]] = {}

    def remember(self, fields: dict[str, str]) -> None:
        """Keep an order's fields as just read or written (by an accept, a step)."""
        if len(self._known) >= KNOWN:
            self._known.clear()
        self._known[fields[F.ID]] = fields

    async def _fields(self, oid: OrderId) -> dict[str, str]:
        fields = await self.store.order_fields(oid) if keys.city_of(oid) else {}
        if not fields:
            raise Refused("order_not_found")
        return fields

    async def perform(
        self,
        oid: OrderId,
        by: Actor,
        actor: str,
        step: str,
        decision: Decision | None = None,
        data: Mapping[str, object] | None = None,
    ) -> StepDone:
        """Do step ``step`` of the order as ``by`` (``actor``: who exactly): on the
        order as this node last saw it, when it did, else (or when that refuses)
        on the order read afresh."""
        known = self._known.pop(oid, None)
        if known is not None:
            try:
                return await self._perform(known, by, actor, step, decision, data)
            except ClientError:
                pass  # perhaps stale (someone else moved the order): read it again
        return await self._perform(await self._fields(oid), by, actor, step, decision, data)

    async def _perform(
        self, fields: dict[str, str], by: Actor, actor: str, step: str,
        decision: Decision | None, data: Mapping[str, object] | None,
    ) -> StepDone:  # fmt: skip
        """:meth:`perform` on the order's fields as just read."""
        oid = OrderId(fields[F.ID])
        if by == "customer" and fields.get(F.CUSTOMER) != actor:
            raise Refused("order_not_found")
        state = OrderState(fields[F.STATE])
        if by == "worker" and (fields.get(F.WORKER) != actor or state not in WORKING):
            raise Refused("job_not_found")  # never had it, or it ended (a cancel)
        pending = records.pending_of(fields)
        if pending is None:
            raise Refused("illegal_step", f"the order is {state.value}: no step is due")
        steps = records.steps_of(fields)
        move = workflow.perform(steps, records.skipped_of(fields), pending, step, by, decision,
                                state)  # fmt: skip
        done = next(s for s in steps if s.name == step)
        workflow.check_data(done, data or {}, fields.get(F.CODE))
        after = OrderState.CANCELLED if move.cancel else next_state(state, move.event)
        call = WorkflowStep(
            by=by, actor=actor, state=state.value, pending=fields.get(F.STEP, ""),
            event=move.event.value, step=move.step, reason=move.reason or "",
            next_pending=move.pending or "", timer_ms=move.timer_ms,
            data=_encode(dict(data)).decode() if data else "", cancel=move.cancel,
            frame=_frame(fields, move, by, after),
            arrival_ms=int(fields[F.ARRIVE_WITHIN_MS])
            if after == OrderState.ARRIVED and F.ARRIVE_WITHIN_MS in fields else None,
            pay=self._job_pay(fields) if after == OrderState.COMPLETED else None,
        )  # fmt: skip
        result = await self.store.workflow_step(oid, fields.get(F.WORKER), call)
        city = fields.get(F.CITY, "")
        if result.order_state in TERMINAL:
            self.figures.order(city, result.order_state)
        job = None
        if result.order_state not in TERMINAL:  # the order as read, moved on as asked
            moved = records.stepped(
                fields, result.order_state, move.pending, [*records.done_of(fields), move.step]
            )
            job = records.job(moved)
            self.remember(moved)
        return StepDone(result.order_state, result.worker_state, job)

    def _job_pay(self, fields: Mapping[str, str]) -> Pay | None:
        """What completing the order pays its worker (None: it has no price): its
        share and distance parts, and the rate the script pays its time part at,
        up to the instant it records the completion at (not this node's reading
        of the clock, which the history does not hold)."""
        pinned = records.earnings_of(fields)
        if pinned is None:
            return None
        rules, quote = pinned
        lines = earnings.for_job(rules, quote.total, float(fields.get(F.ACCEPT_DISTANCE) or 0))
        return _pay(quote.currency, lines, rules.per_minute)

    async def timed_out(self, oid: OrderId, step: str) -> None:
        """The pending step's timer ran out: the system does it (an approval
        decided by its ``on_timeout``). A step someone did meanwhile is left."""
        fields = await self._fields(oid)
        found = next((s for s in records.steps_of(fields) if s.name == step), None)
        if found is None:
            return
        decision: Decision | None = None
        if found.kind == "approval":
            decision = "approve" if found.on_timeout == "approve" else "reject"
        try:
            await self._perform(fields, "system", "system", step, decision, None)
        except ClientError as exc:
            log.info("timer of %s step %s: %s", oid, step, exc.code)

    async def cancel(self, oid: OrderId, by: Actor, actor: str) -> str:
        """Cancel the order as its customer (by the category's rules, paying
        the fee they set) or as an operator (whenever the order has not
        ended); the order's state after it."""
        for _ in range(CANCEL_ROUNDS):
            fields = await self._fields(oid)
            if by == "customer" and fields.get(F.CUSTOMER) != actor:
                raise Refused("order_not_found")
            fee, done, pay = 0, records.done_of(fields), None
            if by == "customer":
                found = workflow.cancel_fee(records.cancellation_of(fields), done)
                if found is None:
                    raise Refused("not_cancellable")
                fee = found
            pinned = records.earnings_of(fields)
            if fee and pinned:
                pay = _pay(pinned[1].currency, earnings.for_cancel(pinned[0], fee))
            try:
                return await self.store.cancel(oid, by, actor, len(done), fee, pay,
                                               fields.get(F.WORKER))  # fmt: skip
            except Stale:
                continue  # a step was done meanwhile: look again
        raise Refused("not_cancellable", "the order kept moving on; try again")
