"""Operators' overrides: take an order back and dispatch it again, move its
deadline, hold a worker back from offers; and the worker's own hand-back of a
job, which is the same step as a reassign.

Each is one atomic step in the store (``server/store/overrides.py``) with the
same race rules as the rest: a reassign racing an accept, a cancel or a step
resolves in whichever script runs first, and the loser is told why by its
code. Every override is recorded as an event carrying ``by`` ``operator`` and
the operator's id as ``actor``, so webhooks and the order's history see it.
"""

from __future__ import annotations

from server.core import workflow
from server.core.errors import Refused
from server.core.order_states import OrderState
from server.services.dispatcher import Dispatcher
from server.store import keys, records
from server.store.engine import Stale
from server.store.keys import OrderId, WorkerId
from server.store.layout import OrderField as F
from server.store.overrides import HoldAction, OverrideStore

HAND_BACK_ROUNDS = 3


class Overrides:
    """What an operator may do beyond a workflow step or a cancel. One per node."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.store = OverrideStore(dispatcher.store)

    async def reassign(self, oid: OrderId, actor: str, reason: str = "") -> list[str]:
        """Withdraw the order from whoever has it, never to offer it to them again,
        restart its workflow and dispatch it now; the workers it was taken from."""
        fields = await self.dispatcher.store.order_fields(oid)
        if not fields:
            raise Refused("order_not_found")
        lease = self.dispatcher.settings.lease_ms
        taken = await self.store.reassign(oid, actor, reason, records.first_step(fields), lease)
        self.dispatcher.dispatch_soon(oid)
        return taken.workers

    async def hand_back(self, oid: OrderId, wid: WorkerId, reason: str) -> str:
        """The worker hands back a job it accepted, before the category's point of
        no return: dispatched again at once, never to this worker (recorded as
        ``reassigned`` by the worker); the worker's state after it."""
        lease = self.dispatcher.settings.lease_ms
        for _ in range(HAND_BACK_ROUNDS):
            fields = await self.dispatcher.store.order_fields(oid) if keys.city_of(oid) else {}
            if not fields or fields.get(F.WORKER) != wid:
                raise Refused("job_not_found")
            done = records.done_of(fields)
            rules = records.cancellation_of(fields)
            if not workflow.worker_may_hand_back(rules, done, OrderState(fields[F.STATE])):
                raise Refused("not_cancellable", "the job is past its point of no return")
            try:
                first = records.first_step(fields)
                taken = await self.store.reassign(oid, wid, reason, first, lease, "worker",
                                                  len(done))  # fmt: skip
            except Stale:
                continue  # a step was done meanwhile: look again
            self.dispatcher.dispatch_soon(oid)
            return taken.worker_state
        raise Refused("not_cancellable", "the job kept moving on; try again")

    async def extend(self, oid: OrderId, actor: str, by_s: int) -> int:
        """Move the deadline the order waits on by ``by_s``; the new deadline (ms)."""
        default = self.dispatcher.timing.max_dispatch_ms
        return (await self.store.extend(oid, actor, by_s * 1000, default)).due

    async def hold(
        self, city: str, wid: WorkerId, action: HoldAction, actor: str,
        for_s: int = 0, customer: str | None = None, reason: str | None = None,
    ) -> None:  # fmt: skip
        """Pause, resume, block or unblock a worker (for one customer, if named)."""
        self.dispatcher.served(city)
        await self.store.hold(city, wid, action, actor, for_s * 1000, customer or "",
                              reason or "")  # fmt: skip
