"""Render the core's transition tables into Lua and load the scripts.

Each script in ``lua/`` is sent as: the rendered rule tables it reads, then
``prelude.lua``'s opening and the helpers it reaches, then the script's own
text. The rules are therefore written once, in :mod:`server.core`, and a
change to a table changes every script that reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TypeVar

from protocol.messages import EarningReason
from server.core import earnings, order_states, worker_states

K = TypeVar("K", bound=str)
E = TypeVar("E", bound=str)
V = TypeVar("V", bound=str)

SCRIPT_NAMES = (
    "create_order",
    "claim_due",
    "tick",
    "offer",
    "settle",
    "accept",
    "reject",
    "cancel",
    "workflow",
    "set_status",
    "connect",
    "disconnect",
    "takeover",
    "forget_stale",
    "index",
    "rate",
    "heartbeat",
    "forget_node",
    "category",
    "reassign",
    "extend",
    "hold",
    "rate_order",
    "waive",
    "tip",
    "begin",
)


def _lua_str(value: str) -> str:
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a safe Lua identifier value: {value!r}")
    return f"'{value}'"


def _table(rows: Mapping[K, Mapping[E, V]]) -> str:
    parts = []
    for state, row in rows.items():
        cells = ", ".join(f"[{_lua_str(e)}] = {_lua_str(s)}" for e, s in row.items())
        parts.append(f"  [{_lua_str(state)}] = {{{cells}}}")
    return "{\n" + ",\n".join(parts) + "\n}"


def _set(items: Iterable[str]) -> str:
    return "{" + ", ".join(f"[{_lua_str(i)}] = true" for i in sorted(items)) + "}"


def _map(items: Mapping[K, str]) -> str:
    return "{" + ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}" for k, v in items.items()) + "}"


STREAM_KEEP_MS = 3_600_000
PERF_DAYS = 30  # how many days of a worker's performance counters are kept
LEDGER_DAYS = 100  # how long the workers' ledgers and the day books last after their last entry
LEDGER_KEEP = 100  # how many of its newest entries a worker's ledger keeps


def rule_tables(sharded: bool = False, stream_keep_ms: int = STREAM_KEEP_MS) -> dict[str, str]:
    """The core's rules as Lua values, by the local name the scripts read them under;
    the publish command (SPUBLISH for sharded pub/sub on a Redis Cluster), how long
    the cities' event streams keep an event, and how many days the workers' performance
    counters keep."""
    return {
        "PUBLISH": _lua_str("SPUBLISH" if sharded else "PUBLISH"),
        "STREAM_KEEP_MS": str(int(stream_keep_ms)),
        "PERF_DAYS": str(PERF_DAYS),
        "LEDGER_DAYS": str(LEDGER_DAYS),
        "LEDGER_KEEP": str(LEDGER_KEEP),
        "MINUTE_MS": str(earnings.MINUTE_MS),
        "TIME_PAY": _lua_str(EarningReason.TIME.value),
        "ORDER_T": _table(order_states.TRANSITIONS),
        "WORKER_T": _table(worker_states.TRANSITIONS),
        "TERMINAL": _set(order_states.TERMINAL),
        "OFFER_OPEN": _set(order_states.OFFER_OPEN),
        "SEARCHING": _set(order_states.SEARCHING),
        "WORKING": _set(order_states.WORKING),
        "CUSTOMER_CANCELS": _set(order_states.CUSTOMER_CANCELS),
        "RATEABLE": _set(order_states.RATEABLE),
        "ANSWER_REFUSALS": _map(order_states.ANSWER_REFUSALS),
        "RECORDED": _map(order_states.RECORDED_AS),
        "CREATED_EVENT": _lua_str(order_states.CREATED_EVENT),
        "ORDER_INITIAL": _lua_str(order_states.INITIAL),
        "WORKER_INITIAL": _lua_str(worker_states.INITIAL),
        "CANDIDATE": _set(worker_states.CANDIDATE),
        "NEEDS_NO_JOBS": _set(worker_states.NEEDS_NO_JOBS),
        "OFF_DUTY": _set(worker_states.OFF_DUTY),
        "REFUSAL": _map(worker_states.REFUSAL_CODES),
    }


def rules() -> str:
    """The core's rules as Lua local definitions (all of them)."""
    return "\n".join(f"local {name} = {value}" for name, value in rule_tables().items())


def _read(name: str) -> str:
    return (resources.files("server.store") / "lua" / f"{name}.lua").read_text()


_DEFINITION = re.compile(r"^(?:--[^\n]*\n)*local function (\w+)\(", re.MULTILINE)


def prelude_parts() -> tuple[str, dict[str, str]]:
    """The prelude as its opening text (run by every script) and its helper
    functions by name, each with the comment above it, in the file's order."""
    text = _read("prelude")
    starts = [(m.start(), m.group(1)) for m in _DEFINITION.finditer(text)]
    ends = [start for start, _ in starts[1:]] + [len(text)]
    head = text[: starts[0][0]] if starts else text
    return head, {name: text[start:end] for (start, name), end in zip(starts, ends, strict=True)}


def _names_used(lua: str, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the Lua text refers to, outside comments and strings."""
    code = re.sub(r"'[^'\n]*'", "''", re.sub(r"--[^\n]*", "", lua))
    words = set(re.findall(r"[A-Za-z_]\w*", code))
    return words & set(names)


def source(name: str, sharded: bool = False, stream_keep_ms: int = STREAM_KEEP_MS) -> str:
    """The Lua source sent to Redis for script ``name``: the rule tables and
    prelude helpers it uses (directly or through another helper), then its own
    text. Redis runs the whole body on every call, so what a script does not
    use is left out: each table built and closure made costs Redis time."""
    tables = rule_tables(sharded, stream_keep_ms)
    head, helpers = prelude_parts()
    body = _read(name)
    needed = _names_used(head + body, [*tables, *helpers])
    todo = [n for n in needed if n in helpers]
    while todo:
        for used in _names_used(helpers[todo.pop()], [*tables, *helpers]) - needed:
            needed.add(used)
            if used in helpers:
                todo.append(used)
    lines = [f"local {t} = {v}\n" for t, v in tables.items() if t in needed]
    return "".join([*lines, head, *(h for n, h in helpers.items() if n in needed), body])


def sources(sharded: bool = False, stream_keep_ms: int = STREAM_KEEP_MS) -> dict[str, str]:
    """Every script's full source, by name."""
    return {name: source(name, sharded, stream_keep_ms) for name in SCRIPT_NAMES}
