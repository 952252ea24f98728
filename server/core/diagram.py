"""Mermaid state diagrams drawn from the transition tables and from
categories' workflows.

The README's lifecycle diagrams, and one per built-in category, are these
strings, pasted between marker comments; ``tests/docs/test_readme.py`` fails when
they drift from the tables or the definitions, and ``scripts/gen-docs``
rewrites them. The definitions come in as arguments (this module reads no
files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from protocol.catalogue import CategoryDefinition, Condition, Step

from server.core import order_states, worker_states
from server.core.workflow import CANCEL, is_terminal, successors

S = TypeVar("S", bound=str)
E = TypeVar("E", bound=str)


def mermaid(table: Mapping[S, Mapping[E, S]], start: str, terminal: frozenset[S]) -> str:
    """A ``stateDiagram-v2`` with one arrow per (state, event) entry of ``table``."""
    lines = ["stateDiagram-v2", f"    [*] --> {start}"]
    for state, row in table.items():
        for event, nxt in row.items():
            lines.append(f"    {state} --> {nxt}: {event}")
    lines += [f"    {state} --> [*]" for state in table if state in terminal]
    return "\n".join(lines)


OPS = {"eq": "=", "ne": "≠", "gt": ">", "ge": "≥", "lt": "<", "le": "≤", "in": "in"}


def _condition(when: Condition) -> str:
    if when.op == "set":
        return f"when {when.attribute} is set"
    value = str(when.value).replace('"', "'")
    return f"when {when.attribute} {OPS[when.op]} {value}"


def _describe(step: Step) -> str:
    """A step's line under its name: who does it, what it is, what it needs."""
    parts = [f"{step.by} approval" if step.kind == "approval" else f"by the {step.by}"]
    if step.state:
        parts.append(f"order {step.state}")
    if step.requires:
        parts.append("needs " + ", ".join(f.name for f in step.requires))
    if step.timeout_s is not None:
        parts.append(f"{step.timeout_s:g} s, then {step.on_timeout}")
    if step.when is not None:
        parts.append(_condition(step.when))
    return "; ".join(parts)


def workflow_mermaid(steps: Sequence[Step]) -> str:
    """A ``stateDiagram-v2`` of a category's steps after assignment: each step
    with who does it, an arrow to each step that can follow (an approval's
    ``approve`` and ``reject``), a conditional step's skip, and the end."""
    lines = ["stateDiagram-v2", f"    [*] --> {steps[0].name}: assigned"]
    lines += [f"    {s.name}: {_describe(s)}" for s in steps]
    for i, step in enumerate(steps):
        after = successors(steps, i)
        for n, j in enumerate(after):
            label = ""
            if step.kind == "approval":
                label = ": approve" if n == 0 and not is_terminal(steps, i) else ": reject"
            lines.append(f"    {step.name} --> {steps[j].name}{label}")
        if step.kind == "approval" and step.on_reject == CANCEL:
            lines.append(f"    {step.name} --> cancelled: reject")
        if step.when is not None and after:
            for k, prev in enumerate(steps):
                if i in successors(steps, k):
                    lines.append(f"    {prev.name} --> {steps[after[0]].name}: skip {step.name}")
        if is_terminal(steps, i):
            lines.append(f"    {step.name} --> [*]: order completed")
    if any(s.kind == "approval" and s.on_reject == CANCEL for s in steps):
        lines.append("    cancelled --> [*]")
    return "\n".join(lines)


def diagrams(categories: Iterable[CategoryDefinition] = ()) -> dict[str, str]:
    """Each diagram by the name of its README marker: the lifecycles, and
    ``category-<key>`` for each of ``categories``."""
    drawn = {
        "order-lifecycle": mermaid(
            order_states.TRANSITIONS, order_states.OrderState.CREATED, order_states.TERMINAL
        ),
        "worker-lifecycle": mermaid(
            worker_states.TRANSITIONS, worker_states.WorkerState.OFFLINE, frozenset()
        ),
    }
    drawn.update({f"category-{d.key}": workflow_mermaid(d.steps) for d in categories})
    return drawn


def render_into(text: str, categories: Iterable[CategoryDefinition] = ()) -> str:
    """``text`` with every ``<!-- diagram:NAME -->`` block replaced by the current diagram."""
    for name, body in diagrams(categories).items():
        begin, end = f"<!-- diagram:{name} -->", f"<!-- /diagram:{name} -->"
        head, found, rest = text.partition(begin)
        if not found:
            continue
        _, _, tail = rest.partition(end)
        text = f"{head}{begin}\n```mermaid\n{body}\n```\n{end}{tail}"
    return text
