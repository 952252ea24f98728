"""The order lifecycle: one transition table, and the one function that reads it.

Rule 1: everything that decides an order's next state lives in this file. The
Redis scripts do not hard-code any transition: ``server/store/scripts.py``
renders :data:`TRANSITIONS` into every script, so a rule is written once.

::

    created ─dispatch→ dispatching ─offer→ offered ─accept→ assigned ─arrive→ arrived
                 ▲  │                  │  │                    ─start→ started ─complete→ completed
                 │  └─give_up→ unassigned │
                 └──────expire / reject───┘   (decline: one of several holders said no)
    every state but the ends ─cancel→ cancelled (a customer: only before the work started)
    offered or working ─reassign→ dispatching (an operator takes it back; never to them again)
    dispatching, offered, working ─extend→ the same state (an operator moves a deadline)

After ``assigned`` the order's category decides what happens
(``server/core/workflow.py``): its steps move the order forward through
arrived and started to completed, possibly skipping a state (a delivery's
``picked_up`` starts the work at once), and a step that changes nothing here
is a ``step``. This table says which moves are possible at all; the workflow
says which one comes next.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from protocol.messages import OrderState

from server.core.errors import IllegalTransition

__all__ = [
    "ANSWER_REFUSALS",
    "CREATED_EVENT",
    "CUSTOMER_CANCELS",
    "ENTERED_BY",
    "INITIAL",
    "OFFER_OPEN",
    "RATEABLE",
    "REASSIGNABLE",
    "RECORDED_AS",
    "SEARCHING",
    "TERMINAL",
    "TRANSITIONS",
    "WORKING",
    "OrderEventType",
    "OrderFact",
    "OrderState",
    "next_state",
]


class OrderEventType(StrEnum):
    """What can happen to an order; each is recorded as an event when it does."""

    DISPATCH = "dispatch"
    OFFER = "offer"
    ACCEPT = "accept"
    DECLINE = "decline"
    REJECT = "reject"
    EXPIRE = "expire"
    GIVE_UP = "give_up"
    ARRIVE = "arrive"
    START = "start"
    COMPLETE = "complete"
    STEP = "step"
    CANCEL = "cancel"
    REASSIGN = "reassign"
    EXTEND = "extend"


S = OrderState
E = OrderEventType

TRANSITIONS: Final[dict[OrderState, dict[OrderEventType, OrderState]]] = {
    S.CREATED: {E.DISPATCH: S.DISPATCHING, E.CANCEL: S.CANCELLED},
    S.DISPATCHING: {
        E.OFFER: S.OFFERED,
        E.GIVE_UP: S.UNASSIGNED,
        E.CANCEL: S.CANCELLED,
        E.EXTEND: S.DISPATCHING,
    },
    S.OFFERED: {
        E.ACCEPT: S.ASSIGNED,
        E.DECLINE: S.OFFERED,
        E.REJECT: S.DISPATCHING,
        E.EXPIRE: S.DISPATCHING,
        E.CANCEL: S.CANCELLED,
        E.REASSIGN: S.DISPATCHING,
        E.EXTEND: S.OFFERED,
    },
    S.ASSIGNED: {
        E.ARRIVE: S.ARRIVED,
        E.START: S.STARTED,
        E.COMPLETE: S.COMPLETED,
        E.STEP: S.ASSIGNED,
        E.CANCEL: S.CANCELLED,
        E.REASSIGN: S.DISPATCHING,
        E.EXTEND: S.ASSIGNED,
    },
    S.ARRIVED: {
        E.START: S.STARTED,
        E.COMPLETE: S.COMPLETED,
        E.STEP: S.ARRIVED,
        E.CANCEL: S.CANCELLED,
        E.REASSIGN: S.DISPATCHING,
        E.EXTEND: S.ARRIVED,
    },
    S.STARTED: {
        E.COMPLETE: S.COMPLETED,
        E.STEP: S.STARTED,
        E.CANCEL: S.CANCELLED,
        E.REASSIGN: S.DISPATCHING,
        E.EXTEND: S.STARTED,
    },
    S.COMPLETED: {},
    S.CANCELLED: {},
    S.UNASSIGNED: {},
}

INITIAL: Final = S.CREATED
TERMINAL: Final[frozenset[OrderState]] = frozenset(s for s, row in TRANSITIONS.items() if not row)
# Where an offer is open: it can be accepted (and so rejected, or expire).
OFFER_OPEN: Final[frozenset[OrderState]] = frozenset(
    s for s, row in TRANSITIONS.items() if E.ACCEPT in row
)
# Where the order needs a worker: a search may end in an offer.
SEARCHING: Final[frozenset[OrderState]] = frozenset(
    s for s, row in TRANSITIONS.items() if E.OFFER in row
)
# Where the workflow runs: a worker has the order and its steps are being done.
WORKING: Final[frozenset[OrderState]] = frozenset(
    s for s, row in TRANSITIONS.items() if E.STEP in row
)
# Where an operator may take the order from whoever has it (its offer's holders or
# its worker) and dispatch it again, never to them.
REASSIGNABLE: Final[frozenset[OrderState]] = frozenset(
    s for s, row in TRANSITIONS.items() if E.REASSIGN in row
)
# Where a customer may still cancel: before the work started (an operator, or a
# rejected approval, may cancel in any state the table allows).
CUSTOMER_CANCELS: Final[frozenset[OrderState]] = frozenset(
    s for s, row in TRANSITIONS.items() if E.CANCEL in row and s is not S.STARTED
)
# Where a customer may rate the order and tip its worker (each once): the work was done.
RATEABLE: Final[frozenset[OrderState]] = frozenset({S.COMPLETED})
# How an answer (accept or reject) to an offer of an order in these states is
# refused; any other closed offer is ``offer_taken`` or ``offer_expired``.
ANSWER_REFUSALS: Final[dict[OrderState, str]] = {S.CANCELLED: "order_cancelled"}

# How each event is recorded in the order's history: the fact, in the past tense.
RECORDED_AS: Final[dict[OrderEventType, str]] = {
    E.DISPATCH: "dispatching",
    E.OFFER: "offered",
    E.ACCEPT: "assigned",
    E.DECLINE: "declined",
    E.REJECT: "rejected",
    E.EXPIRE: "expired",
    E.GIVE_UP: "unassigned",
    E.ARRIVE: "arrived",
    E.START: "started",
    E.COMPLETE: "completed",
    E.STEP: "step",
    E.CANCEL: "cancelled",
    E.REASSIGN: "reassigned",
    E.EXTEND: "extended",
}


class OrderFact(StrEnum):
    """What an order's history records besides its moves along the table: its
    creation, a booked job's reminder, a rating, a tip (the state stays)."""

    CREATED = "created"
    REMINDED = "reminded"
    RATED = "rated"
    TIPPED = "tipped"


CREATED_EVENT: Final = OrderFact.CREATED

# The event that puts a working order in each state (a workflow step's ``state``).
ENTERED_BY: Final[dict[OrderState, OrderEventType]] = {
    S.ARRIVED: E.ARRIVE,
    S.STARTED: E.START,
    S.COMPLETED: E.COMPLETE,
}


def next_state(state: OrderState, event: OrderEventType) -> OrderState:
    """The state after ``event``; raises :class:`IllegalTransition` if the table has no entry."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition("order", state, event) from None
