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

from collections.abc import Sequence
from typing import Final

from protocol.catalogue import FieldError, Step, StepInfo

from server.core.order_states import RECORDED_AS, OrderState

__all__ = ["CANCEL", "PHASES", "RESERVED", "check_graph", "infos", "is_terminal", "successors"]

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
