"""Render the core's transition tables into Lua and load the scripts.

Each script in ``lua/`` is sent as: the rendered rule tables, then
``prelude.lua`` (shared helpers), then the script's own text. The rules are
therefore written once, in :mod:`server.core`, and a change to a table
changes every script that reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TypeVar

from server.core import order_states, worker_states

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
    "progress",
    "set_status",
    "connect",
    "disconnect",
    "takeover",
    "forget_stale",
    "index",
    "rate",
    "heartbeat",
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


def rules() -> str:
    """The core's rules as Lua local definitions."""
    return "\n".join(
        [
            f"local ORDER_T = {_table(order_states.TRANSITIONS)}",
            f"local WORKER_T = {_table(worker_states.TRANSITIONS)}",
            f"local TERMINAL = {_set(order_states.TERMINAL)}",
            f"local OFFER_OPEN = {_set(order_states.OFFER_OPEN)}",
            f"local SEARCHING = {_set(order_states.SEARCHING)}",
            f"local ANSWER_REFUSALS = {_map(order_states.ANSWER_REFUSALS)}",
            f"local RECORDED = {_map(order_states.RECORDED_AS)}",
            f"local CREATED_EVENT = {_lua_str(order_states.CREATED_EVENT)}",
            f"local ORDER_INITIAL = {_lua_str(order_states.INITIAL)}",
            f"local WORKER_INITIAL = {_lua_str(worker_states.INITIAL)}",
            f"local CANDIDATE = {_set(worker_states.CANDIDATE)}",
            f"local NEEDS_NO_JOBS = {_set(worker_states.NEEDS_NO_JOBS)}",
            f"local REFUSAL = {_map(worker_states.REFUSAL_CODES)}",
        ]
    )


def _read(name: str) -> str:
    return (resources.files("server.store") / "lua" / f"{name}.lua").read_text()


def source(name: str) -> str:
    """The full Lua source sent to Redis for script ``name``."""
    return "\n".join([rules(), _read("prelude"), _read(name)])


def sources() -> dict[str, str]:
    """Every script's full source, by name."""
    return {name: source(name) for name in SCRIPT_NAMES}
