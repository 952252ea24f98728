"""The order state machine (``server/core/order_states.py``), over its whole table.

Every (state, event) pair is tried against the lifecycle written out below by
hand (PROTOCOL.md §9): its pairs give their next state, every other pair is
refused with a typed error. Plain synchronous tests.
"""

from __future__ import annotations

from collections import deque

import pytest

from server.core.errors import ClientError, IllegalTransition
from server.core.order_states import (
    CREATED_EVENT,
    CUSTOMER_CANCELS,
    ENTERED_BY,
    RECORDED_AS,
    TERMINAL,
    TRANSITIONS,
    WORKING,
    OrderEventType,
    OrderState,
    next_state,
)
from tests.core.lifecycle import legal_and_illegal

S = OrderState
E = OrderEventType

# The order lifecycle as PROTOCOL.md §9 tells it, written here by hand and not read
# from the table: a transition added to the table fails test_illegal_pair_is_refused,
# one dropped or redirected fails test_legal_pair_gives_table_state.
LIFECYCLE: dict[tuple[S, E], S] = {
    (S.CREATED, E.DISPATCH): S.DISPATCHING,
    (S.CREATED, E.CANCEL): S.CANCELLED,
    (S.DISPATCHING, E.OFFER): S.OFFERED,
    (S.DISPATCHING, E.GIVE_UP): S.UNASSIGNED,
    (S.DISPATCHING, E.CANCEL): S.CANCELLED,
    (S.DISPATCHING, E.EXTEND): S.DISPATCHING,
    (S.OFFERED, E.ACCEPT): S.ASSIGNED,
    (S.OFFERED, E.DECLINE): S.OFFERED,
    (S.OFFERED, E.REJECT): S.DISPATCHING,
    (S.OFFERED, E.EXPIRE): S.DISPATCHING,
    (S.OFFERED, E.CANCEL): S.CANCELLED,
    (S.OFFERED, E.REASSIGN): S.DISPATCHING,
    (S.OFFERED, E.EXTEND): S.OFFERED,
    (S.ASSIGNED, E.ARRIVE): S.ARRIVED,
    (S.ASSIGNED, E.START): S.STARTED,
    (S.ASSIGNED, E.COMPLETE): S.COMPLETED,
    (S.ASSIGNED, E.STEP): S.ASSIGNED,
    (S.ASSIGNED, E.CANCEL): S.CANCELLED,
    (S.ASSIGNED, E.REASSIGN): S.DISPATCHING,
    (S.ASSIGNED, E.EXTEND): S.ASSIGNED,
    (S.ARRIVED, E.START): S.STARTED,
    (S.ARRIVED, E.COMPLETE): S.COMPLETED,
    (S.ARRIVED, E.STEP): S.ARRIVED,
    (S.ARRIVED, E.CANCEL): S.CANCELLED,
    (S.ARRIVED, E.REASSIGN): S.DISPATCHING,
    (S.ARRIVED, E.EXTEND): S.ARRIVED,
    (S.STARTED, E.COMPLETE): S.COMPLETED,
    (S.STARTED, E.STEP): S.STARTED,
    (S.STARTED, E.CANCEL): S.CANCELLED,
    (S.STARTED, E.REASSIGN): S.DISPATCHING,
    (S.STARTED, E.EXTEND): S.STARTED,
}
LEGAL, ILLEGAL = legal_and_illegal(LIFECYCLE, OrderState, OrderEventType)


def _reachable(start: OrderState) -> set[OrderState]:
    """Every state that some sequence of events leads to from ``start`` (``start`` included)."""
    seen = {start}
    queue = deque([start])
    while queue:
        for after in TRANSITIONS[queue.popleft()].values():
            if after not in seen:
                seen.add(after)
                queue.append(after)
    return seen


def test_table_has_a_row_for_every_state() -> None:
    """The transition table lists every order state, terminal ones with an empty row."""
    assert set(TRANSITIONS) == set(OrderState)


@pytest.mark.parametrize(("state", "event", "after"), LEGAL)
def test_legal_pair_gives_table_state(state: S, event: E, after: S) -> None:
    """A pair of the lifecycle moves the order to the lifecycle's next state."""
    assert next_state(state, event) is after


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_pair_is_refused(state: S, event: E) -> None:
    """A pair outside the lifecycle raises IllegalTransition naming machine, state and event."""
    with pytest.raises(IllegalTransition) as caught:
        next_state(state, event)
    error = caught.value
    assert isinstance(error, ClientError)
    assert error.machine == "order"
    assert error.state == state
    assert error.event == event
    assert error.code == "illegal_transition"


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_state_has_no_exit(state: S) -> None:
    """A terminal state refuses every event."""
    assert TRANSITIONS[state] == {}
    for event in OrderEventType:
        with pytest.raises(IllegalTransition):
            next_state(state, event)


def test_terminal_states_are_the_end_states() -> None:
    """The terminal states are exactly completed, cancelled and unassigned."""
    assert {S.COMPLETED, S.CANCELLED, S.UNASSIGNED} == TERMINAL


@pytest.mark.parametrize("state", [s for s in OrderState if s not in TERMINAL])
def test_non_terminal_state_can_reach_an_end(state: S) -> None:
    """From every non-terminal state some sequence of events ends the order."""
    assert _reachable(state) & TERMINAL


def test_every_state_is_reachable_from_created() -> None:
    """Every state can be reached from created; no row of the table is dead."""
    assert _reachable(S.CREATED) == set(OrderState)


def test_recorded_as_covers_every_event() -> None:
    """Every event type has a past-tense name in the order's history."""
    assert set(RECORDED_AS) == set(OrderEventType)


def test_recorded_names_are_distinct() -> None:
    """No two events, nor the creation, are recorded under the same name."""
    names = [*RECORDED_AS.values(), CREATED_EVENT]
    assert len(set(names)) == len(names)


def test_working_states_are_those_of_a_workflow() -> None:
    """Steps run while a worker has the order: assigned, arrived, started."""
    assert {S.ASSIGNED, S.ARRIVED, S.STARTED} == WORKING
    assert all(TRANSITIONS[s][E.STEP] is s for s in WORKING)


def test_a_workflow_only_moves_forward() -> None:
    """From each working state the table reaches every later state by the event
    that enters it, and no earlier one."""
    order = [S.ASSIGNED, S.ARRIVED, S.STARTED, S.COMPLETED]
    for i, state in enumerate(order[:-1]):
        for later in order[i + 1 :]:
            assert next_state(state, ENTERED_BY[later]) is later
        for earlier in order[1:i]:
            with pytest.raises(IllegalTransition):
                next_state(state, ENTERED_BY[earlier])


def test_a_customer_cancels_only_before_the_work_starts() -> None:
    """Cancel is in every row but the ends; a customer's only before started."""
    cancellable = {s for s, row in TRANSITIONS.items() if E.CANCEL in row}
    assert cancellable == set(OrderState) - TERMINAL
    assert all(TRANSITIONS[s][E.CANCEL] is S.CANCELLED for s in cancellable)
    assert {S.CREATED, S.DISPATCHING, S.OFFERED, S.ASSIGNED, S.ARRIVED} == CUSTOMER_CANCELS
