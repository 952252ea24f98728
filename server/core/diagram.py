"""Mermaid state diagrams drawn from the transition tables.

The README's lifecycle diagrams are these strings, pasted between marker
comments; ``tests/test_docs.py`` fails when they drift from the tables, and
``scripts/gen-docs`` rewrites them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from server.core import order_states, worker_states

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


def diagrams() -> dict[str, str]:
    """Each diagram by the name of its README marker."""
    return {
        "order-lifecycle": mermaid(
            order_states.TRANSITIONS, order_states.OrderState.CREATED, order_states.TERMINAL
        ),
        "worker-lifecycle": mermaid(
            worker_states.TRANSITIONS, worker_states.WorkerState.OFFLINE, frozenset()
        ),
    }


def render_into(text: str) -> str:
    """``text`` with every ``<!-- diagram:NAME -->`` block replaced by the current diagram."""
    for name, body in diagrams().items():
        begin, end = f"<!-- diagram:{name} -->", f"<!-- /diagram:{name} -->"
        head, found, rest = text.partition(begin)
        if not found:
            continue
        _, _, tail = rest.partition(end)
        text = f"{head}{begin}\n```mermaid\n{body}\n```\n{end}{tail}"
    return text
