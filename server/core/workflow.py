"""A category's workflow: the steps after a worker accepted, as a graph. Pure.

The dispatch part of an order's life (created → dispatching → offered →
assigned, cancelled, unassigned) is the one core table in
``order_states.py``. After ``assigned`` the category decides: its steps form
a directed graph from the first step, each step leading to its ``next`` (the
following step unless named), an approval also to ``on_reject``. A
definition is accepted only if the graph is sound:

- every step is reachable from the first, and no path loops, so every path
  ends at a terminal step;
- the order's core state only moves forward along a path
  (``assigned`` → ``arrived`` → ``started`` → ``completed``);
- names are unique, refer to real steps, and never take a core event's name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Final, Literal, NamedTuple

from protocol.catalogue import Attribute, Cancellation, FieldError, Step, StepInfo

from server.core.attributes import Value, holds
from server.core.errors import ClientError, InvalidFields
from server.core.order_states import (
    ENTERED_BY,
    REASSIGNABLE,
    RECORDED_AS,
    WORKING,
    OrderEventType,
    OrderState,
)

__all__ = [
    "CANCEL",
    "DEFAULT_STEPS",
    "PHASES",
    "RESERVED",
    "Move",
    "cancel_fee",
    "check_data",
    "check_graph",
    "first",
    "infos",
    "is_terminal",
    "perform",
    "skipped",
    "successors",
    "timer_ms",
    "worker_may_hand_back",
]

Actor = Literal["worker", "customer", "operator", "system"]
Decision = Literal["approve", "reject"]

CANCEL: Final = "cancel"
# The core states a workflow moves through, in the only order it may.
PHASES: Final[tuple[OrderState, ...]] = (
    OrderState.ASSIGNED,
    OrderState.ARRIVED,
    OrderState.STARTED,
    OrderState.COMPLETED,
)
# Step names are recorded as order events: none may pose as a dispatch event.
RESERVED: Final = frozenset(RECORDED_AS.values()) - {"arrived", "started", "completed"} | {
    "created",
    CANCEL,
}
# The steps of an order by bare skill (protocol 1's first form of an order).
DEFAULT_STEPS: Final[tuple[Step, ...]] = (
    Step(name="arrived", label="Arrived", state="arrived"),
    Step(name="started", label="Started", state="started"),
    Step(name="completed", label="Completed"),
)
URL_MAX: Final = 2000
_URL: Final = re.compile(r"^https?://[^\s/]+\S*\Z")


def is_terminal(steps: Sequence[Step], i: int) -> bool:
    """Whether step ``i`` ends the workflow (marked, or last without a ``next``)."""
    step = steps[i]
    return step.terminal or (step.next is None and i == len(steps) - 1)


def successors(steps: Sequence[Step], i: int) -> list[int]:
    """The steps that can follow step ``i``: its next (unless it is terminal)
    and, for an approval, where a rejection goes. Names that do not exist
    are left out (:func:`check_graph` reports them)."""
    index = {s.name: n for n, s in enumerate(steps)}
    step, out = steps[i], []
    if not is_terminal(steps, i):
        out.append(index.get(step.next, -1) if step.next else i + 1)
    if step.kind == "approval" and step.on_reject != CANCEL:
        out.append(index.get(step.on_reject, -1))
    return [n for n in out if n >= 0]


def _names(steps: Sequence[Step]) -> list[FieldError]:
    errors, seen = [], set()
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if step.name in seen:
            errors.append(FieldError(f"{where}.name", "duplicate", f"a second step {step.name!r}"))
        if step.name in RESERVED:
            errors.append(FieldError(f"{where}.name", "reserved", f"{step.name!r} is a core event"))
        seen.add(step.name)
        for field, target in (("next", step.next), ("on_reject", step.on_reject)):
            if target is not None and target != CANCEL and target not in {s.name for s in steps}:
                errors.append(FieldError(f"{where}.{field}", "unknown_step", f"no step {target!r}"))
        if step.terminal and step.next is not None:
            errors.append(
                FieldError(f"{where}.next", "invalid_field", "a terminal step has no next")
            )
        if is_terminal(steps, i) and step.when is not None:
            errors.append(
                FieldError(f"{where}.when", "invalid_field", "a terminal step cannot be skipped")
            )
        errors += _roles(step, where)
    return errors


def _roles(step: Step, where: str) -> list[FieldError]:
    errors = []
    if step.kind == "approval" and step.by not in ("customer", "operator"):
        errors.append(
            FieldError(
                f"{where}.by", "invalid_field", "an approval waits for a customer or an operator"
            )
        )
    if (step.kind == "approval" or step.by == "system") and step.timeout_s is None:
        errors.append(
            FieldError(
                f"{where}.timeout_s", "missing_field", "an approval or system step needs a timeout"
            )
        )
    if step.kind != "approval" and step.on_reject != CANCEL:
        errors.append(
            FieldError(f"{where}.on_reject", "invalid_field", "only an approval can be rejected")
        )
    names = [f.name for f in step.requires]
    if len(set(names)) != len(names):
        errors.append(FieldError(f"{where}.requires", "duplicate", "a field is named twice"))
    return errors  # fmt: skip


def _order(steps: Sequence[Step]) -> tuple[list[int], list[FieldError]]:
    """The reachable steps in topological order, and the loops and
    unreachable steps as errors."""
    state = dict.fromkeys(range(len(steps)), 0)  # 0 unseen, 1 on the path, 2 done
    done: list[int] = []
    errors: list[FieldError] = []

    def visit(i: int) -> None:
        state[i] = 1
        for j in successors(steps, i):
            if state[j] == 1:
                errors.append(FieldError(f"steps[{i}]", "loop", f"leads back to {steps[j].name!r}"))
            elif state[j] == 0:
                visit(j)
        state[i] = 2
        done.append(i)

    visit(0)
    errors += [
        FieldError(f"steps[{i}]", "unreachable", f"no path from {steps[0].name!r} reaches it")
        for i, s in state.items()
        if s == 0
    ]
    return done[::-1], errors


def _phases(steps: Sequence[Step], topo: list[int]) -> list[FieldError]:
    """Each step's core state must not lie behind one a path into it reached."""
    rank = {p: n for n, p in enumerate(PHASES)}
    entry = dict.fromkeys(range(len(steps)), 0)
    errors = []
    for i in topo:
        step = steps[i]
        after = rank[OrderState(step.state)] if step.state else entry[i]
        if is_terminal(steps, i):
            after = rank[OrderState.COMPLETED]
        elif after < entry[i]:
            behind = PHASES[entry[i]].value
            errors.append(
                FieldError(f"steps[{i}].state", "backwards", f"{step.state!r} after {behind!r}")
            )
            after = entry[i]
        for j in successors(steps, i):
            entry[j] = max(entry[j], after)
    return errors


def check_graph(steps: Sequence[Step]) -> list[FieldError]:
    """Everything wrong with a workflow's graph, each naming its step."""
    errors = _names(steps)
    topo, loops = _order(steps)
    if loops:
        return errors + loops
    return errors + _phases(steps, topo)


def infos(steps: Sequence[Step]) -> list[StepInfo]:
    """The steps as a worker's app draws them."""
    return [
        StepInfo(name=s.name, label=s.label or s.name.replace("_", " "), by=s.by, kind=s.kind,
                 requires=list(s.requires))
        for s in steps
    ]  # fmt: skip


# ---------------------------------------------------------------- running a workflow


class Move(NamedTuple):
    """What doing the pending step does to an order.

    ``step`` is recorded as the event's type, with ``reason`` (``approved``
    or ``rejected`` for an approval); ``event`` is the core table's event for
    it. ``pending`` is the step due next (None: the workflow is over, or
    ``cancel`` ends the order), with its timer ``timer_ms`` from now when it
    has one."""

    step: str
    event: OrderEventType
    reason: str | None
    pending: str | None
    timer_ms: int | None
    cancel: bool = False


def skipped(
    steps: Sequence[Step], form: Mapping[str, Attribute], values: Mapping[str, Value]
) -> frozenset[str]:
    """The steps an order skips: those whose ``when`` does not hold for its
    attributes. Attributes never change, so this is decided at creation."""
    return frozenset(
        s.name for s in steps if s.when is not None and not holds(s.when, form, values)
    )


def _land(steps: Sequence[Step], skip: Collection[str], i: int) -> int:
    """Step ``i``, or the first one its ``next`` edges lead to that is not skipped
    (a terminal step is never skipped, so this ends)."""
    while steps[i].name in skip:
        i = successors(steps, i)[0]
    return i


def timer_ms(step: Step) -> int | None:
    """How long an approval or a system step waits once it is due."""
    if step.timeout_s is None or not (step.kind == "approval" or step.by == "system"):
        return None
    return int(step.timeout_s * 1000)


def first(steps: Sequence[Step], skip: Collection[str]) -> Step:
    """The step an order starts its workflow with, once a worker has it."""
    return steps[_land(steps, skip, 0)]


def _allowed(step: Step, by: Actor, decision: Decision | None) -> None:
    """Raise unless ``by`` may do ``step`` with ``decision``. An operator may do
    any step; the system does a system step, and decides an approval whose
    time is up."""
    if by not in (step.by, "operator") and not (by == "system" and timer_ms(step)):
        raise ClientError("not_your_step", f"{step.name!r} is done by the {step.by}")
    if step.kind == "approval" and decision is None:
        raise ClientError("missing_field", f"{step.name!r} is an approval: send a decision")
    if step.kind != "approval" and decision is not None:
        raise ClientError("invalid_field", f"{step.name!r} is not an approval: no decision")


def perform(
    steps: Sequence[Step],
    skip: Collection[str],
    pending: str,
    name: str,
    by: Actor,
    decision: Decision | None,
    state: OrderState,
) -> Move:
    """Doing step ``name`` of an order in ``state`` whose pending step is
    ``pending``: the move, or a :class:`ClientError` (``illegal_step`` when
    it is not the pending step, ``not_your_step``, a missing decision)."""
    index = {s.name: n for n, s in enumerate(steps)}
    if name != pending or name not in index:
        raise ClientError("illegal_step", f"the pending step is {pending!r}, not {name[:40]!r}")
    i = index[name]
    step = steps[i]
    _allowed(step, by, decision)
    reason = None if decision is None else ("approved" if decision == "approve" else "rejected")
    if decision == "reject":
        if step.on_reject == CANCEL:
            return Move(name, OrderEventType.STEP, reason, None, None, cancel=True)
        target: int | None = index[step.on_reject]
        event = OrderEventType.STEP
    else:
        target = None if is_terminal(steps, i) else successors(steps, i)[0]
        event = _event(step, state, i, steps)
    if target is None:
        return Move(name, event, reason, None, None)
    after = steps[_land(steps, skip, target)]
    return Move(name, event, reason, after.name, timer_ms(after))


def _event(step: Step, state: OrderState, i: int, steps: Sequence[Step]) -> OrderEventType:
    """The core event of doing a step: it ends the work, moves the order into
    the step's state, or leaves it where it is."""
    if is_terminal(steps, i):
        return OrderEventType.COMPLETE
    if step.state is not None:
        target = OrderState(step.state)
        if PHASES.index(target) > PHASES.index(state):
            return ENTERED_BY[target]
    return OrderEventType.STEP


def _bad_value(field_type: str, value: object, code: str | None) -> str | None:
    """Why one piece of step data does not fit its type, or None."""
    if field_type == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "expected a number"
    if not isinstance(value, str) or len(value) > URL_MAX:
        return f"expected a string of at most {URL_MAX} characters"
    if field_type == "url" and not _URL.match(value):
        return "expected an http or https URL"
    if field_type == "code" and value != code:
        return "not the code the customer was given"
    if field_type == "string" and len(value) > 500:
        return "longer than 500 characters"
    return None


def check_data(step: Step, data: Mapping[str, object], code: str | None) -> None:
    """Raise ``invalid_step_data`` naming each missing, unknown or bad piece of
    the data ``step`` requires (``code``: the order's handover code)."""
    wanted = {f.name: f for f in step.requires}
    errors = [
        FieldError(f"data.{name}", "unknown_field", f"{step.name!r} takes no {name!r}")
        for name in sorted(set(data) - set(wanted))
    ]
    for field in step.requires:
        where, value = f"data.{field.name}", data.get(field.name)
        if field.name not in data:
            if field.required:
                errors.append(FieldError(where, "missing_field", "required"))
        elif why := _bad_value(field.type, value, code):
            wrong = field.type == "code" and isinstance(value, str)
            errors.append(FieldError(where, "wrong_code" if wrong else "invalid_field", why))
    if errors:
        raise InvalidFields("invalid_step_data", f"{step.name!r}: the data does not fit", errors)


def worker_may_hand_back(
    rules: Cancellation | None, done: Collection[str], state: OrderState
) -> bool:
    """Whether the worker may still hand its job back: while the order is
    working and can be reassigned, until its category's point of no return
    (``worker_until``) is done, or, without one, until the work started."""
    if state not in WORKING or state not in REASSIGNABLE:
        return False
    if rules is None or rules.worker_until is None:
        return state is not OrderState.STARTED
    return rules.worker_until not in done


def cancel_fee(rules: Cancellation | None, done: Collection[str]) -> int | None:
    """What a customer pays to cancel now that the steps ``done`` are done, or
    None when the rules no longer let the customer cancel."""
    if rules is None:
        return 0
    if rules.customer_until is not None and rules.customer_until in done:
        return None
    return rules.fee if rules.free_until is not None and rules.free_until in done else 0
