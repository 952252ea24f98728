"""What this process knows about the orders its customers created.

Workers and customers of one process share one :class:`OrderBook`, keyed by
order id, so latencies that span both sides are measured on one clock:

- created -> first offer received: from the moment the customer starts its
  ``POST /v1/orders`` to the moment a worker's socket delivers the first
  ``offer`` for that order. The offer can arrive before the POST's response
  does (the id is not known yet), so an early offer is parked until then.
- time to assign: the order's ``created_at`` to the time of its ``assigned``
  event. The event's own time is used when known (live followers, the final
  look-up of open orders); otherwise the worker's accept ``ack``
  (``server_time``, or its arrival time on this machine).

States only move forward here (a live event and a worker ack can arrive in
either order). Imports only ``protocol`` and ``simulator.stats``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from protocol.messages import OrderState, OrderView
from simulator.stats import Metrics

S = OrderState
_RANK: dict[str, int] = {
    S.CREATED: 0,
    S.DISPATCHING: 1,
    S.OFFERED: 2,
    S.ASSIGNED: 3,
    S.ARRIVED: 4,
    S.STARTED: 5,
    S.COMPLETED: 6,
    S.CANCELLED: 6,
    S.UNASSIGNED: 6,
}
TERMINAL = frozenset({S.COMPLETED, S.CANCELLED, S.UNASSIGNED})

# How the progress display groups states.
DISPLAY_GROUP: dict[str, str] = {
    S.CREATED: "open",
    S.DISPATCHING: "open",
    S.OFFERED: "open",
    S.ASSIGNED: "assigned",
    S.ARRIVED: "assigned",
    S.STARTED: "assigned",
    S.COMPLETED: "completed",
    S.CANCELLED: "cancelled",
    S.UNASSIGNED: "unassigned",
}


@dataclass(slots=True)
class OrderRecord:
    """One order as seen by this process (times in ms since the epoch)."""

    order_id: str
    customer: int
    posted_ms: float
    created_at: int
    state: str = S.CREATED
    assigned_at: float | None = None
    assigned_exact: bool = False
    offered: bool = False
    code: str | None = None  # the handover code a step may ask for (category orders)
    category: str | None = None


class OrderBook:
    """The orders of one process and the cross-side latencies they yield."""

    def __init__(self, metrics: Metrics, recent: int = 200) -> None:
        self.metrics = metrics
        self.orders: dict[str, OrderRecord] = {}
        self._early_offers: dict[str, float] = {}
        self.recent_tta: deque[float] = deque(maxlen=recent)

    def created(self, view: OrderView, customer: int, posted_ms: float) -> OrderRecord:
        """Register an order the server just created for ``customer``."""
        record = OrderRecord(view.id, customer, posted_ms, view.created_at, code=view.code,
                             category=view.category)  # fmt: skip
        self.orders[view.id] = record
        early = self._early_offers.pop(view.id, None)
        if early is not None:
            self._first_offer(record, early)
        self.update(view.id, view.state)
        return record

    def offer_received(self, order_id: str, received_ms: float) -> None:
        """A worker of this process got an offer for ``order_id``."""
        record = self.orders.get(order_id)
        if record is None:
            self._early_offers.setdefault(order_id, received_ms)
        elif not record.offered:
            self._first_offer(record, received_ms)

    def _first_offer(self, record: OrderRecord, received_ms: float) -> None:
        record.offered = True
        self.metrics.record("created_to_offer_ms", received_ms - record.posted_ms)

    def assigned(self, order_id: str, at_ms: float, exact: bool) -> None:
        """The order was assigned at ``at_ms``; ``exact`` when that is the event's own time."""
        record = self.orders.get(order_id)
        if record is None or (record.assigned_at is not None and not exact):
            return
        if record.assigned_at is None:
            self.recent_tta.append(at_ms - record.created_at)
        if exact or record.assigned_at is None:
            record.assigned_at, record.assigned_exact = at_ms, exact
        self.update(order_id, S.ASSIGNED)

    def update(self, order_id: str, state: str) -> None:
        """Move the order forward to ``state`` (a step back is ignored)."""
        record = self.orders.get(order_id)
        if record is not None and _RANK.get(state, -1) > _RANK[record.state]:
            record.state = state

    def apply_view(self, view: OrderView) -> None:
        """Take what a full ``OrderView`` says: its state and its assignment time."""
        for event in view.events:
            if event.type == "assigned":
                self.assigned(view.id, event.at, exact=True)
        self.update(view.id, view.state)

    def open_orders(self) -> Iterator[OrderRecord]:
        """The orders not known to have ended."""
        return (r for r in self.orders.values() if r.state not in TERMINAL)

    def waiting_orders(self) -> list[OrderRecord]:
        """The orders still looking for a worker, as far as this process knows."""
        return [r for r in self.orders.values() if _RANK[r.state] < _RANK[S.ASSIGNED]]

    def by_group(self) -> dict[str, int]:
        """How many orders are in each display group (open, assigned, completed, ...)."""
        groups = dict.fromkeys(("open", "assigned", "completed", "cancelled", "unassigned"), 0)
        for record in self.orders.values():
            groups[DISPLAY_GROUP[record.state]] += 1
        return groups

    def settle(self) -> None:
        """At the end of the run: count outcomes and record every time to assign."""
        m = self.metrics
        for record in self.orders.values():
            m.count(f"orders_{DISPLAY_GROUP[record.state]}")
            if record.assigned_at is not None:
                m.count("orders_ever_assigned")
                m.record("time_to_assign_ms", record.assigned_at - record.created_at)
                if record.assigned_exact:
                    m.count("assign_times_from_events")
