"""The order state machine (``server/core/order_states.py``), over its whole table.

Every (state, event) pair is tried: the pairs in the table give their next
state, every other pair is refused with a typed error. Plain synchronous tests.
"""

from __future__ import annotations

import itertools
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

S = OrderState
E = OrderEventType

LEGAL = [
    pytest.param(state, event, after, id=f"{state}-{event}")
    for state, row in TRANSITIONS.items()
    for event, after in row.items()
]
ILLEGAL = [
    pytest.param(state, event, id=f"{state}-{event}")
    for state, event in itertools.product(OrderState, OrderEventType)
    if event not in TRANSITIONS.get(state, {})
]


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


def test_cross_product_is_split_between_legal_and_illegal() -> None:
    """Every (state, event) pair is tested exactly once, as legal or as illegal."""
    assert len(LEGAL) + len(ILLEGAL) == len(OrderState) * len(OrderEventType)
    assert LEGAL
    assert ILLEGAL


def test_table_has_a_row_for_every_state() -> None:
    """The transition table lists every order state, terminal ones with an empty row."""
    assert set(TRANSITIONS) == set(OrderState)


@pytest.mark.parametrize(("state", "event", "after"), LEGAL)
def test_legal_pair_gives_table_state(state: S, event: E, after: S) -> None:
    """A pair in the table moves the order to the table's next state."""
    assert next_state(state, event) is after


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_pair_is_refused(state: S, event: E) -> None:
    """A pair missing from the table raises IllegalTransition naming machine, state and event."""
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
