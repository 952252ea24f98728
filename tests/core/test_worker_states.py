"""The worker state machine (``server/core/worker_states.py``), over its whole table.

Every (state, event) pair is tried against the lifecycle written out below by
hand (PROTOCOL.md's worker state table), with and without jobs in hand;
refusals carry the code that tells the worker why. Plain synchronous tests.
"""

from __future__ import annotations

import pytest

from protocol.errors import ERROR_CODES
from server.core.errors import IllegalTransition
from server.core.worker_states import (
    CANDIDATE,
    NEEDS_NO_JOBS,
    OFF_DUTY,
    REFUSAL_CODES,
    STATUS_EVENTS,
    TRANSITIONS,
    WorkerEventType,
    WorkerState,
    next_state,
)
from tests.core.lifecycle import legal_and_illegal

S = WorkerState
E = WorkerEventType

# The worker lifecycle as PROTOCOL.md's transition table tells it (and ``take``, §10),
# written here by hand and not read from the table: a transition added to the table
# fails test_illegal_pair_is_refused, one dropped or redirected
# test_legal_pair_gives_table_state.
LIFECYCLE: dict[tuple[S, E], S] = {
    (S.OFFLINE, E.GO_AVAILABLE): S.AVAILABLE,
    (S.OFFLINE, E.PAUSE): S.PAUSED,
    (S.OFFLINE, E.GO_OFFLINE): S.OFFLINE,
    (S.PAUSED, E.GO_AVAILABLE): S.AVAILABLE,
    (S.PAUSED, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.GO_OFFLINE): S.OFFLINE,
    (S.AVAILABLE, E.GO_AVAILABLE): S.AVAILABLE,
    (S.AVAILABLE, E.PAUSE): S.PAUSED,
    (S.AVAILABLE, E.GO_OFFLINE): S.OFFLINE,
    (S.AVAILABLE, E.OFFER): S.OFFERED,
    (S.AVAILABLE, E.FREE): S.AVAILABLE,
    (S.AVAILABLE, E.TAKE): S.ON_JOB,
    (S.OFFERED, E.RELEASE): S.AVAILABLE,
    (S.OFFERED, E.ACCEPT): S.ON_JOB,
    (S.ON_JOB, E.FREE): S.AVAILABLE,
}
LEGAL, ILLEGAL = legal_and_illegal(LIFECYCLE, WorkerState, WorkerEventType)
EXPECTED_REFUSAL = {S.OFFERED: "offer_pending", S.ON_JOB: "active_job"}


def test_table_has_a_row_for_every_state() -> None:
    """The transition table lists every worker state."""
    assert set(TRANSITIONS) == set(WorkerState)


@pytest.mark.parametrize(("state", "event", "after"), LEGAL)
def test_legal_pair_gives_table_state(state: S, event: E, after: S) -> None:
    """A pair of the lifecycle moves a worker without jobs to the lifecycle's next state."""
    assert next_state(state, event) is after


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_pair_is_refused(state: S, event: E) -> None:
    """A pair outside the lifecycle raises IllegalTransition with the state's refusal code."""
    with pytest.raises(IllegalTransition) as caught:
        next_state(state, event)
    error = caught.value
    assert error.machine == "worker"
    assert error.state == state
    assert error.event == event
    assert error.code == EXPECTED_REFUSAL.get(state, "illegal_transition")


@pytest.mark.parametrize("event", sorted(NEEDS_NO_JOBS))
@pytest.mark.parametrize("state", list(WorkerState))
def test_worker_with_a_job_cannot_pause_or_go_offline(state: S, event: E) -> None:
    """With a job in hand, pause and go_offline are refused with code active_job, in any state."""
    with pytest.raises(IllegalTransition) as caught:
        next_state(state, event, jobs=1)
    assert caught.value.code == "active_job"
    assert caught.value.machine == "worker"


def test_needs_no_jobs_is_pause_and_go_offline() -> None:
    """Exactly the two status changes that take a worker off duty need it to hold no jobs."""
    assert {E.PAUSE, E.GO_OFFLINE} == NEEDS_NO_JOBS


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [p for p in LEGAL if p.values[1] not in NEEDS_NO_JOBS],
)
def test_jobs_do_not_change_other_transitions(state: S, event: E, after: S) -> None:
    """A worker holding a job (capacity > 1) moves like one without for every other event."""
    assert next_state(state, event, jobs=1) is after


@pytest.mark.parametrize("event", [e for e in WorkerEventType if e not in TRANSITIONS[S.OFFERED]])
def test_refusals_while_offered_say_offer_pending(event: E) -> None:
    """A worker holding an offer is refused anything but accept/release with code offer_pending."""
    with pytest.raises(IllegalTransition) as caught:
        next_state(S.OFFERED, event)
    assert caught.value.code == "offer_pending"


def test_status_events_cover_the_three_statuses() -> None:
    """A worker can ask to be available, paused or offline, and nothing else."""
    assert set(STATUS_EVENTS) == {"available", "paused", "offline"}


@pytest.mark.parametrize("status", sorted(STATUS_EVENTS))
@pytest.mark.parametrize("state", [S.OFFLINE, S.PAUSED, S.AVAILABLE])
def test_status_event_leads_to_that_status(state: S, status: str) -> None:
    """From any off-job state, the event for a status puts the worker in that status."""
    assert next_state(state, STATUS_EVENTS[status]) is WorkerState(status)


def test_only_available_worker_can_take_an_offer() -> None:
    """Offer is legal from available and from no other state."""
    assert {s for s, row in TRANSITIONS.items() if E.OFFER in row} == {S.AVAILABLE}


@pytest.mark.parametrize("event", sorted(STATUS_EVENTS.values()))
@pytest.mark.parametrize("state", list(WorkerState))
def test_every_refused_status_has_a_protocol_code(state: S, event: E) -> None:
    """A status a worker asks for is allowed, or refused with a code of the protocol."""
    assert event in TRANSITIONS[state] or REFUSAL_CODES.get(state) in ERROR_CODES


def test_off_duty_is_offline_and_paused() -> None:
    """Off duty are the states only status requests leave: offline and paused; no state
    that holds an offer or a job, and no candidate state, is among them."""
    assert {S.OFFLINE, S.PAUSED} == OFF_DUTY
    assert not OFF_DUTY & CANDIDATE
