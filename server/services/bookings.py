"""Orders booked for later (``server/core/booking.py`` says when and what
fits): the fields that book one at creation, and the moment its job begins.

A booked order waits ``created`` until its dispatch begins (``tick.lua`` moves
it on when its 'dat' comes). An accepted one sits in its worker's schedule
until its job begins: then :meth:`Bookings.begin` reminds the worker (the
``reminder`` frame, built here from the order as read) and ``begin.lua``
makes it one of the worker's jobs, or, when the worker is away, takes it back
so that the order is dispatched again at once.
"""

from __future__ import annotations

from protocol.codec import encode
from protocol.messages import Reminder, Slot
from server.core import booking
from server.core.errors import Refused
from server.store import records
from server.store.keys import OrderId
from server.store.layout import OrderField as F
from server.store.redis_store import Store


def fields_of(slot: Slot, lead_s: float, remind_s: float, now_ms: int) -> dict[str, str]:
    """The hash fields that book an order for ``slot`` (its own are set with the
    order's): when its dispatch begins, and how long before the slot its job
    begins; ``invalid_field`` for a slot that cannot be booked now."""
    problem = booking.slot_problem(slot, now_ms)
    if problem is not None:
        raise Refused("invalid_field", problem)
    return records.booking_fields(
        booking.dispatch_at(slot, int(lead_s * 1000)), int(remind_s * 1000)
    )


class Bookings:
    """Begins booked jobs through the store. One per node."""

    def __init__(self, store: Store, lease_ms: int) -> None:
        self.store = store
        self.lease_ms = lease_ms

    async def begin(self, oid: OrderId) -> bool:
        """Begin the order's booked job if its time came; True when its worker was
        away and the order must be dispatched again now."""
        fields = await self.store.order_fields(oid)
        slot = records.slot_of(fields)
        worker = fields.get(F.WORKER)
        if slot is None or not worker or not records.booking_waits(fields):
            return False
        job = records.job(records.booking_begun(fields))
        frame = encode(Reminder(job=job, starts_at=slot.start)).decode()
        begun = await self.store.begin(oid, worker, frame, records.first_step(fields),
                                       self.lease_ms)  # fmt: skip
        return begun.action == "away"
