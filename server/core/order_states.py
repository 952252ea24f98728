"""The order lifecycle: one transition table, and the one function that reads it.

Rule 1: everything that decides an order's next state lives in this file. The
Redis scripts do not hard-code any transition: ``server/store/scripts.py``
renders :data:`TRANSITIONS` into every script, so a rule is written once.

::

    created ─dispatch→ dispatching ─offer→ offered ─accept→ assigned ─arrive→ arrived
                 ▲  │                  │  │                    ─start→ started ─complete→ completed
                 │  └─give_up→ unassigned │
                 └──────expire / reject───┘   (decline: one of several holders said no)
    created, dispatching, offered, assigned, arrived ─cancel→ cancelled
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from protocol.messages import OrderState

from server.core.errors import IllegalTransition

__all__ = [
    "ANSWER_REFUSALS",
    "CREATED_EVENT",
    "INITIAL",
    "OFFER_OPEN",
    "PROGRESS_EVENTS",
    "RECORDED_AS",
    "SEARCHING",
    "TERMINAL",
    "TRANSITIONS",
    "OrderEventType",
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
    CANCEL = "cancel"


S = OrderState
E = OrderEventType

TRANSITIONS: Final[dict[OrderState, dict[OrderEventType, OrderState]]] = {
    S.CREATED: {E.DISPATCH: S.DISPATCHING, E.CANCEL: S.CANCELLED},
    S.DISPATCHING: {E.OFFER: S.OFFERED, E.GIVE_UP: S.UNASSIGNED, E.CANCEL: S.CANCELLED},
    S.OFFERED: {
        E.ACCEPT: S.ASSIGNED,
        E.DECLINE: S.OFFERED,
        E.REJECT: S.DISPATCHING,
        E.EXPIRE: S.DISPATCHING,
        E.CANCEL: S.CANCELLED,
    },
    S.ASSIGNED: {E.ARRIVE: S.ARRIVED, E.CANCEL: S.CANCELLED},
    S.ARRIVED: {E.START: S.STARTED, E.CANCEL: S.CANCELLED},
    S.STARTED: {E.COMPLETE: S.COMPLETED},
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
    E.CANCEL: "cancelled",
}
CREATED_EVENT: Final = "created"

# The worker's progress steps, as order events.
PROGRESS_EVENTS: Final[dict[str, OrderEventType]] = {
    "arrived": E.ARRIVE,
    "started": E.START,
    "completed": E.COMPLETE,
}


def next_state(state: OrderState, event: OrderEventType) -> OrderState:
    """The state after ``event``; raises :class:`IllegalTransition` if the table has no entry."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition("order", state, event) from None
