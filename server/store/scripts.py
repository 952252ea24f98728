"""Render the core's transition tables into Lua and load the scripts.

Each script in ``lua/`` (one file per command, with an Input/Output header:
KEYS, ARGV, Reply) names the helpers it uses with ``--- @include "<name>"``
lines, as bullmq's scripts do; a helper is a file ``lua/lib/<name>.lua``
holding one ``local function`` (or, for ``declared``, the key guard's
tables) and including what it uses in turn. A script is sent as: the
rendered rule tables it and its helpers read, then the helpers it reaches,
each once and after those it includes, then its own text. The rules are
therefore written once, in :mod:`server.core`, and a change to a table
changes every script that reads it.

The data layout is written once too, in :mod:`server.store.layout` (and the
event names in the core): a script builds a key with ``worker_key(prefix, id)``
and names a field ``O.state``, an event ``ORDER_EVENT.cancel``, and
:func:`expand` writes the layout in as it renders (``(prefix .. 'w:' .. id)``,
``'state'``, ``'cancel'``), so what Redis runs costs what the hand-written
concatenations cost. Arguments: :mod:`server.store.arguments`.

Channels, in the city's hash tag too: ``d:{city}:inbox:<node>`` (msgpack
``[kind, worker, ref, frame]`` for that node's workers of the city) and
``d:{city}:watch:<order>`` (live order events, JSON). ``PUBLISH`` is
``'SPUBLISH'`` on a Redis Cluster that has sharded pub/sub (7.0 and newer),
else ``'PUBLISH'``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TypeVar

from protocol.messages import EarningReason
from server.core import earnings, order_states, worker_states
from server.store import arguments, keys, layout

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
        "TIP_PAY": _lua_str(EarningReason.TIP.value),
        "JOBS_DONE": _lua_str(layout.BOOK_JOBS),
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
        "HOLD_RECORDED": _map(worker_states.HOLD_RECORDED_AS),
        "CATALOGUE_CHANNEL": _lua_key(keys.CATALOGUE_CHANNEL),
    }


def _lua_key(value: str) -> str:
    if not re.fullmatch(r"[\w:{}@.]+", value):
        raise ValueError(f"not a safe Lua key part: {value!r}")
    return f"'{value}'"


def _builders() -> dict[str, str]:
    """The layout's key builders, by name, as Lua expressions of their arguments
    (``{0}``, ``{1}``): a city's keys from its prefix (``d:{city}:``, which
    ``city_prefix`` finds in any of its keys) and an id where the part takes one,
    an order's other keys from its record's key, the holds' fields."""
    if not re.fullmatch(r"[a-z]+:", layout.ROOT):
        raise ValueError(f"ROOT {layout.ROOT!r} would need escaping in a Lua pattern")
    found = {"city_prefix": f"string.match({{0}}, '^({layout.ROOT}{{{{[^}}}}]*}}}}:)')"}
    for name, part in layout.members(layout.CityKey).items():
        kind = "channel" if part in (layout.CityKey.INBOX, layout.CityKey.WATCH) else "key"
        tail = " .. {1}" if part.endswith(":") else ""
        found[f"{name.lower()}_{kind}"] = f"{{0}} .. {_lua_key(part)}{tail}"
    for name, part in layout.members(layout.OrderKey).items():
        found[f"{name.lower()}_key"] = f"{{0}} .. {_lua_key(part)}"
    found["paused_field"] = f"{_lua_key(layout.HoldField.PAUSED)} .. {{0}}"
    found["blocked_field"] = f"{_lua_key(layout.HoldField.BLOCKED)} .. {{0}}"
    found["blocked_for_field"] = (
        f"{_lua_key(layout.HoldField.BLOCKED_FOR)} .. {{0}} .. ':' .. {{1}}"
    )
    return found


BUILDERS = _builders()


def _lower(values: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in values.items()}


# The records' fields and the event names, by the table a script names them from:
# a field is O.state, an event ORDER_EVENT.cancel.
NAMED: dict[str, dict[str, str]] = {
    "O": _lower(layout.members(layout.OrderField)),
    "W": _lower(layout.members(layout.WorkerField)),
    "C": _lower(layout.members(layout.CategoryField)),
    "P": _lower(layout.members(layout.PerfField)),
    "PERF_KIND": _lower(layout.members(layout.PerfKind)),
    "PERF_FIGURE": _lower(layout.members(layout.PerfFigure)),
    "ORDER_EVENT": {e.name.lower(): e.value for e in order_states.OrderEventType},
    "ORDER_FACT": {e.name.lower(): e.value for e in order_states.OrderFact},
    "WORKER_EVENT": {e.name.lower(): e.value for e in worker_states.WorkerEventType},
    "WORKER_FACT": {e.name.lower(): e.value for e in worker_states.WorkerFact},
    "HOLD_ACTION": {e.name.lower(): e.value for e in worker_states.HoldAction},
}

# A string literal or a comment (copied as they are), a member of a NAMED table, or
# the opening of a call (a builder's is expanded).
_TOKEN = re.compile(r"'[^'\n]*'|--[^\n]*|(?<![\w.])([A-Z][A-Z_]*)\.(\w+)|(?<![\w.])(\w+)\(")
_SIMPLE = re.compile(r"[\w.\[\]]+")


def _arguments(lua: str, start: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose '(' ends at ``start``, and where
    its ')' ends (string literals skipped)."""
    args, depth, at, begun = [], 1, start, start
    while depth:
        char = lua[at]
        if char == "'":
            at = lua.index("'", at + 1)
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        if (char == "," and depth == 1) or depth == 0:
            args.append(lua[begun:at].strip())
            begun = at + 1
        at += 1
    return args, at


def _grouped(lua: str) -> bool:
    """Whether an expression needs no parentheses to be an operand: a name, an
    index, or one parenthesized group already."""
    return bool(_SIMPLE.fullmatch(lua)) or (lua[:1] == "(" and _arguments(lua, 1)[1] == len(lua))


def expand(lua: str) -> str:
    """Lua text with the layout written in: each key builder call replaced by the
    expression it stands for (``worker_key(prefix, wid)`` is ``(prefix .. 'w:' ..
    wid)``) and each field or event (``O.state``, ``ORDER_EVENT.cancel``) by its
    value quoted. Redis runs no builder function and builds no name table: the
    layout costs it nothing. A member the layout lacks is an error here, not a nil
    in Redis."""
    out, at = [], 0
    while match := _TOKEN.search(lua, at):
        out.append(lua[at : match.start()])
        table, member, call = match.group(1), match.group(2), match.group(3)
        at = match.end()
        if table in NAMED:
            if member not in NAMED[table]:
                raise ValueError(f"Lua reads {table}.{member}, which the layout does not define")
            out.append(_lua_str(NAMED[table][member]))
        elif call in BUILDERS:
            args, at = _arguments(lua, at)
            args = [a if _grouped(a) else f"({a})" for a in map(expand, args)]
            out.append(f"({BUILDERS[call].format(*args)})")
        else:
            out.append(match.group(0))
    return "".join([*out, lua[at:]])


def rules() -> str:
    """The core's rules as Lua local definitions (all of them)."""
    return "\n".join(f"local {name} = {value}" for name, value in rule_tables().items())


@functools.cache
def _read(name: str) -> str:
    """A packaged Lua file's text (read once: the package does not change under a
    running process)."""
    return (resources.files("server.store") / "lua" / f"{name}.lua").read_text()


def lib(name: str) -> str:
    """The text of helper ``name``, ``lua/lib/<name>.lua``."""
    return _read(f"lib/{name}")


def lib_names() -> list[str]:
    """Every helper in ``lua/lib/``, by name."""
    folder = resources.files("server.store") / "lua" / "lib"
    return sorted(p.name.removesuffix(".lua") for p in folder.iterdir() if p.name.endswith(".lua"))


_INCLUDE = re.compile(r'^--- @include "(\w+)"$', re.MULTILINE)


def includes(lua: str) -> list[str]:
    """The helpers a script or helper includes (its ``--- @include "<name>"`` lines), in order."""
    return _INCLUDE.findall(lua)


def included(lua: str) -> list[str]:
    """Every helper ``lua`` reaches through its includes and theirs, each once, each
    after the helpers it includes (so a local is defined before a function uses it)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"Lua include cycle: {' -> '.join((*path, name))}")
        if name in order:
            return
        for inner in includes(lib(name)):
            visit(inner, (*path, name))
        order.append(name)

    for name in includes(lua):
        visit(name, ())
    return order


def _code(lua: str) -> str:
    """Lua text without its comments and with its string literals emptied."""
    return re.sub(r"'[^'\n]*'", "''", re.sub(r"--[^\n]*", "", lua))


def _names_used(lua: str, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the Lua text refers to, outside comments and strings (a
    name after a dot is a table's field: ``redis.call`` is not ``call``)."""
    words = set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", _code(lua)))
    return words & set(names)


def _check_options(name: str, body: str) -> None:
    """A script reads only the named arguments its Struct in
    :mod:`server.store.arguments` has (``opts.<name>``), and only a script that has one."""
    read = set(re.findall(r"(?<![\w.])opts\.(\w+)", _code(body)))
    shape = arguments.BY_SCRIPT.get(name)
    known = set(shape.__struct_fields__) if shape else set()
    if read - known:
        raise ValueError(f"{name}.lua reads opts.{sorted(read - known)[0]}, which it is not given")


@functools.cache
def source(name: str, sharded: bool = False, stream_keep_ms: int = STREAM_KEEP_MS) -> str:
    """The Lua source sent to Redis for script ``name``: the rule tables it and its
    helpers read, the helpers it includes (and theirs), then its own text. Redis
    runs the whole body on every call, so what a script does not use is left out:
    each table built and closure made costs Redis time. Rendered once per process."""
    tables = rule_tables(sharded, stream_keep_ms)
    body = _read(name)
    _check_options(name, body)
    texts = [expand(t) for t in [*(lib(h) for h in included(body)), body]]
    needed = _names_used("".join(texts), tables)
    lines = [f"local {t} = {v}\n" for t, v in tables.items() if t in needed]
    return "".join([*lines, *texts])


def sources(sharded: bool = False, stream_keep_ms: int = STREAM_KEEP_MS) -> dict[str, str]:
    """Every script's full source, by name."""
    return {name: source(name, sharded, stream_keep_ms) for name in SCRIPT_NAMES}
