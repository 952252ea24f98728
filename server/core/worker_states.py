"""The worker's dispatch state: one transition table, and the one function that reads it.

Rule 1: everything that decides a worker's next state lives in this file; the
Redis scripts get the table rendered into them (``server/store/scripts.py``).

A worker is a candidate for offers only when ``available``. ``on_job`` means
its jobs fill its capacity; a worker with room for more jobs (capacity > 1)
goes back to ``available`` through ``free`` right after it accepts. A booked
job that begins (``server/core/booking.py``) may fill an available worker's
capacity: ``take``.

::

    offline ⇄ paused ⇄ available ─offer→ offered ─accept→ on_job ─free→ available
       ▲__________________│  ▲                 │                ▲
                             └─release─────────┘   (reject, expire, taken, cancelled)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from protocol.messages import WorkerState

from server.core.errors import IllegalTransition

__all__ = [
    "CANDIDATE",
    "HOLD_RECORDED_AS",
    "INITIAL",
    "NEEDS_NO_JOBS",
    "OFF_DUTY",
    "REFUSAL_CODES",
    "STATUS_EVENTS",
    "TRANSITIONS",
    "HoldAction",
    "WorkerEventType",
    "WorkerFact",
    "WorkerState",
    "next_state",
]


class WorkerEventType(StrEnum):
    """What can happen to a worker."""

    GO_AVAILABLE = "go_available"
    PAUSE = "pause"
    GO_OFFLINE = "go_offline"
    OFFER = "offer"
    RELEASE = "release"
    ACCEPT = "accept"
    FREE = "free"
    TAKE = "take"  # a booked job began and fills its capacity


S = WorkerState
E = WorkerEventType

TRANSITIONS: Final[dict[WorkerState, dict[WorkerEventType, WorkerState]]] = {
    S.OFFLINE: {E.GO_AVAILABLE: S.AVAILABLE, E.PAUSE: S.PAUSED, E.GO_OFFLINE: S.OFFLINE},
    S.PAUSED: {E.GO_AVAILABLE: S.AVAILABLE, E.PAUSE: S.PAUSED, E.GO_OFFLINE: S.OFFLINE},
    S.AVAILABLE: {
        E.GO_AVAILABLE: S.AVAILABLE,
        E.PAUSE: S.PAUSED,
        E.GO_OFFLINE: S.OFFLINE,
        E.OFFER: S.OFFERED,
        E.FREE: S.AVAILABLE,
        E.TAKE: S.ON_JOB,
    },
    S.OFFERED: {E.RELEASE: S.AVAILABLE, E.ACCEPT: S.ON_JOB},
    S.ON_JOB: {E.FREE: S.AVAILABLE},
}

INITIAL: Final = S.OFFLINE
# Who may be offered an order: the states with an ``offer`` entry. Only
# workers in these states are in the search index (``free`` geo sets).
CANDIDATE: Final[frozenset[WorkerState]] = frozenset(
    s for s, row in TRANSITIONS.items() if E.OFFER in row
)

# The status a worker asks for, as the event that gets it there.
STATUS_EVENTS: Final[dict[str, WorkerEventType]] = {
    "available": E.GO_AVAILABLE,
    "paused": E.PAUSE,
    "offline": E.GO_OFFLINE,
}

# Off duty: states that only the worker's own status requests lead out of (and,
# by the table, into). A worker off duty is never in the search index.
OFF_DUTY: Final[frozenset[WorkerState]] = frozenset(
    s for s, row in TRANSITIONS.items() if set(row) <= set(STATUS_EVENTS.values())
)

# Status changes that a worker holding a job may not make: its jobs must end first.
NEEDS_NO_JOBS: Final[frozenset[WorkerEventType]] = frozenset({E.PAUSE, E.GO_OFFLINE})


class WorkerFact(StrEnum):
    """What a worker event on its city's stream says happened (a webhook's
    ``worker.<fact>``): its socket, its status, its pay, an operator's hold."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STATUS = "status"
    EARNED = "earned"
    WAIVED = "waived"
    PAUSED = "paused"
    RESUMED = "resumed"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"


class HoldAction(StrEnum):
    """What an operator does to hold a worker back from offers, or let it go."""

    PAUSE = "pause"
    RESUME = "resume"
    BLOCK = "block"
    UNBLOCK = "unblock"


# How each hold is recorded: the fact, in the past tense.
HOLD_RECORDED_AS: Final[dict[HoldAction, WorkerFact]] = {
    HoldAction.PAUSE: WorkerFact.PAUSED,
    HoldAction.RESUME: WorkerFact.RESUMED,
    HoldAction.BLOCK: WorkerFact.BLOCKED,
    HoldAction.UNBLOCK: WorkerFact.UNBLOCKED,
}

# Why a status change is refused, by the state that refuses it.
REFUSAL_CODES: Final[dict[WorkerState, str]] = {
    S.OFFERED: "offer_pending",
    S.ON_JOB: "active_job",
}


def next_state(state: WorkerState, event: WorkerEventType, jobs: int = 0) -> WorkerState:
    """The state after ``event`` for a worker holding ``jobs`` jobs; raises
    :class:`IllegalTransition` if the table has no entry or the worker must end its jobs first."""
    if jobs and event in NEEDS_NO_JOBS:
        raise IllegalTransition("worker", state, event, "active_job")
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition("worker", state, event, REFUSAL_CODES.get(state)) from None
