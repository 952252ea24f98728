"""Rendering the core's rules into Lua (``server/store/scripts.py``) and key names
(``server/store/keys.py``). Pure string work: no Redis is started.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import pytest

from protocol import ids
from server.core import order_states, worker_states
from server.store import arguments, keys, layout, scripts

CITY = keys.City("paris")


def _sections() -> dict[str, str]:
    """The rendered rules by Lua local name: ``{"ORDER_T": "{...}", ...}``."""
    sections: dict[str, str] = {}
    for chunk in ("\n" + scripts.rules()).split("\nlocal ")[1:]:
        name, _, body = chunk.partition(" = ")
        sections[name] = body
    return sections


def _row(table: str, state: str) -> str:
    """The line of a rendered transition table that holds ``state``'s row."""
    (line,) = [ln for ln in _sections()[table].splitlines() if ln.startswith(f"  ['{state}'] = ")]
    return line


_hash_tag = keys.tag_of


def test_rules_define_every_table() -> None:
    """The rendered rules define each table the scripts read (and the publish command)."""
    assert set(_sections()) == {
        "PUBLISH",
        "STREAM_KEEP_MS",
        "PERF_DAYS",
        "LEDGER_DAYS",
        "LEDGER_KEEP",
        "MINUTE_MS",
        "TIME_PAY",
        "TIP_PAY",
        "JOBS_DONE",
        "ORDER_T",
        "WORKER_T",
        "TERMINAL",
        "OFFER_OPEN",
        "SEARCHING",
        "WORKING",
        "CUSTOMER_CANCELS",
        "RATEABLE",
        "ANSWER_REFUSALS",
        "RECORDED",
        "CREATED_EVENT",
        "ORDER_INITIAL",
        "WORKER_INITIAL",
        "CANDIDATE",
        "NEEDS_NO_JOBS",
        "OFF_DUTY",
        "REFUSAL",
        "HOLD_RECORDED",
        "CATALOGUE_CHANNEL",
    }


STATES = sorted({*order_states.OrderState, *worker_states.WorkerState})
GUARD = re.compile(r"""(?:[=~]=\s*'({0})')|(?:'({0})'\s*[=~]=)""".format("|".join(STATES)))


def _lua(name: str) -> str:
    """A script's own text, or a helper's (``lib/<name>``)."""
    return (resources.files("server.store") / "lua" / f"{name}.lua").read_text()


LUA_FILES = [*scripts.SCRIPT_NAMES, *(f"lib/{n}" for n in scripts.lib_names())]


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_script_compares_with_a_state_name(name: str) -> None:
    """Rule 1: every guard reads the rendered tables; no script compares a state by name."""
    assert GUARD.findall(_lua(name)) == []


@pytest.mark.parametrize(
    ("name", "rendered"),
    [
        ("OFFER_OPEN", order_states.OFFER_OPEN),
        ("SEARCHING", order_states.SEARCHING),
        ("CANDIDATE", worker_states.CANDIDATE),
    ],
)
def test_derived_state_sets_are_rendered(name: str, rendered: frozenset[str]) -> None:
    """The state sets the scripts guard with are rendered from the tables, member for member."""
    section = _sections()[name]
    assert section.count("= true") == len(rendered)
    for state in rendered:
        assert f"['{state}'] = true" in section


@pytest.mark.parametrize(
    ("table", "transitions"),
    [("ORDER_T", order_states.TRANSITIONS), ("WORKER_T", worker_states.TRANSITIONS)],
)
def test_rules_render_every_transition(table: str, transitions: dict[str, dict[str, str]]) -> None:
    """Each state's Lua row holds exactly its table entries, event to next state."""
    for state, row in transitions.items():
        line = _row(table, state)
        for event, after in row.items():
            assert f"['{event}'] = '{after}'" in line
        assert line.count("] = '") == len(row)


@pytest.mark.parametrize(
    "name",
    [
        *order_states.OrderState,
        *order_states.OrderEventType,
        *worker_states.WorkerState,
        *worker_states.WorkerEventType,
    ],
)
def test_rules_mention_every_state_and_event(name: str) -> None:
    """Every state and event of both machines appears, quoted, in the rendered rules."""
    assert f"'{name}'" in scripts.rules()


def test_rules_render_the_other_tables() -> None:
    """Terminal states, recorded names, jobs rule and refusal codes are rendered from the core."""
    sections = _sections()
    for state in order_states.TERMINAL:
        assert f"['{state}'] = true" in sections["TERMINAL"]
    for event, name in order_states.RECORDED_AS.items():
        assert f"['{event}'] = '{name}'" in sections["RECORDED"]
    assert sections["CREATED_EVENT"] == f"'{order_states.CREATED_EVENT}'"
    for worker_event in worker_states.NEEDS_NO_JOBS:
        assert f"['{worker_event}'] = true" in sections["NEEDS_NO_JOBS"]
    for worker_state, code in worker_states.REFUSAL_CODES.items():
        assert f"['{worker_state}'] = '{code}'" in sections["REFUSAL"]


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_every_script_has_a_file(name: str) -> None:
    """Each named script is a packaged Lua file."""
    assert (resources.files("server.store") / "lua" / f"{name}.lua").is_file()


def test_every_lua_file_is_a_named_script() -> None:
    """No Lua file lies unused: each one in lua/ is a script in SCRIPT_NAMES (the
    helpers are in lua/lib/), and every helper is included by some script."""
    files = {
        p.name.removesuffix(".lua")
        for p in (resources.files("server.store") / "lua").iterdir()
        if p.name.endswith(".lua")
    }
    assert files == set(scripts.SCRIPT_NAMES)
    reached = {h for name in scripts.SCRIPT_NAMES for h in scripts.included(_lua(name))}
    assert reached == set(scripts.lib_names())


@pytest.mark.parametrize("value", ["it's", 'say "hi"', "a]]b", "a b", "a\nb", ""])
def test_lua_str_refuses_unsafe_values(value: str) -> None:
    """A value that could break out of a Lua string literal is refused."""
    with pytest.raises(ValueError, match="not a safe Lua"):
        scripts._lua_str(value)


def test_lua_str_quotes_identifiers() -> None:
    """A plain identifier is rendered as a single-quoted Lua string."""
    assert scripts._lua_str("give_up") == "'give_up'"


def _defined(source: str) -> set[str]:
    return set(re.findall(r"^local (?:function )?(\w+)", source, re.MULTILINE))


# What each helper defines: its own name (one local function), or the key guard's tables.
DEFINES = {n: _defined(scripts.lib(n)) for n in scripts.lib_names()}


@pytest.mark.parametrize("name", scripts.lib_names())
def test_each_helper_is_one_function_named_as_its_file(name: str) -> None:
    """lib/<name>.lua defines the local function <name> and nothing else (declared
    holds the key guard's tables), with a comment above it."""
    text = scripts.lib(name)
    if name == "declared":
        assert DEFINES[name] == {"DECLARED", "MISSING"}
        assert "redis.replicate_commands()" in text
        return
    assert DEFINES[name] == {name}
    assert text.count("\nlocal function ") + text.startswith("local function ") == 1


@pytest.mark.parametrize("name", LUA_FILES)
def test_includes_name_exactly_the_helpers_used(name: str) -> None:
    """A script or helper includes each helper whose name it uses, and no other
    (a missing include would be a nil global in Redis; an unused one costs time)."""
    text = _lua(name)
    own = name.removeprefix("lib/")
    used = {h for h, names in DEFINES.items() if h != own and scripts._names_used(text, names)}
    assert sorted(scripts.includes(text)) == sorted(used)


def test_included_puts_a_helper_after_what_it_includes() -> None:
    """tick reaches emit through expire_offer and order_step; each helper comes once,
    after every helper it includes; the key guard comes before call."""
    order = scripts.included(_lua("tick"))
    assert {"emit", "order_step", "expire_offer"} <= set(order)
    assert len(order) == len(set(order))
    for at, name in enumerate(order):
        assert set(scripts.includes(scripts.lib(name))) <= set(order[:at]), name
    assert order.index("declared") < order.index("call")


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_source_defines_what_it_uses_and_nothing_more(name: str) -> None:
    """A script's source is the tables its text and helpers read, the helpers it
    reaches (each before its first use), then its own text; nothing unused."""
    source = scripts.source(name)
    body = scripts.expand(_lua(name))
    assert source.endswith(body)
    helpers = scripts.included(body)
    texts = [scripts.expand(scripts.lib(h)) for h in helpers]
    tables = _defined(source[: -len(body)]) & set(scripts.rule_tables())
    assert tables == scripts._names_used("".join([*texts, body]), scripts.rule_tables())
    positions = [source.index(t) for t in texts]
    assert positions == sorted(positions)


def test_a_script_leaves_out_helpers_it_does_not_reach() -> None:
    """claim_due reads no rule table and sends no event; tick reaches emit
    through expire_offer and order_step."""
    claim, tick = scripts.source("claim_due"), scripts.source("tick")
    assert _defined(claim) & {*scripts.rule_tables(), "emit", "order_step"} == set()
    assert {"clock", "reply"} <= _defined(claim)
    assert {"emit", "order_step", "expire_offer", "OFFER_OPEN", "SEARCHING"} <= _defined(tick)


def test_names_used_ignores_comments_and_strings() -> None:
    """A helper's name in a comment or a string literal does not pull it in."""
    lua = "-- emit here\nworker_step(k, w, 'release')\nlocal x = split(y)"
    assert scripts._names_used(lua, ["emit", "release", "split", "worker_step"]) == {
        "split",
        "worker_step",
    }


def test_sources_holds_every_script() -> None:
    """sources() gives every named script's full source."""
    assert scripts.sources() == {name: scripts.source(name) for name in scripts.SCRIPT_NAMES}


# ---------------------------------------------------------------- keys


def test_new_order_id_round_trips_its_city() -> None:
    """A fresh order id names its city, and two fresh ids differ."""
    oid = keys.new_order_id(CITY)
    assert keys.city_of(oid) == CITY
    assert oid != keys.new_order_id(CITY)


@pytest.mark.parametrize("attempt", [0, 1, 42, 999_999_999])
def test_offer_id_round_trips_its_order(attempt: int) -> None:
    """An offer id names the order it was made for."""
    oid = keys.new_order_id(CITY)
    assert keys.order_of(keys.offer_id(oid, attempt)) == oid


@pytest.mark.parametrize(
    "text",
    [
        "",
        "paris",
        "paris.",
        ".0123456789abcdef",
        "paris.short",
        "Paris.0123456789abcdef",
        "paris.0123456789ABCDEF",
        "par is.0123456789abcdef",
        "paris.0123456789abcdef/1",
        "paris.0123456789abcdef.x",
        "a" * 33 + ".0123456789abcdef",
    ],
)
def test_malformed_order_id_has_no_city(text: str) -> None:
    """A string that is not an order id (an offer id included) gives no city."""
    assert keys.city_of(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "paris.0123456789abcdef",
        "paris.0123456789abcdef/",
        "paris.0123456789abcdef/x",
        "paris.0123456789abcdef/1234567890",
        "paris.short/1",
        "paris.0123456789abcdef/1/2",
    ],
)
def test_malformed_offer_id_has_no_order(text: str) -> None:
    """A string that is not an offer id (an order id included) gives no order."""
    assert keys.order_of(text) is None


@pytest.mark.parametrize(
    "check",
    [
        lambda: keys.city_of("paris.0123456789abcdef\n"),
        lambda: keys.order_of("paris.0123456789abcdef/1\n"),
        lambda: ids.NAME_RE.match("paris\n"),
    ],
    ids=["city_of", "order_of", "NAME"],
)
def test_trailing_newline_is_not_an_id(check: Callable[[], object]) -> None:
    """An id or city with a trailing newline is refused like any other malformed one."""
    assert check() is None


def test_every_key_of_an_order_shares_its_city_hash_tag() -> None:
    """All keys a script touches for one order hash to the order's city (Redis Cluster slot)."""
    oid = keys.new_order_id(CITY)
    built = [
        keys.order(oid),
        keys.tried(oid),
        keys.events(oid),
        keys.timers(CITY),
        keys.free(CITY, "delivery"),
        keys.seen(CITY),
        keys.pos(CITY),
        keys.fix_at(CITY),
        keys.online(CITY),
        keys.node_workers(CITY, "node-1"),
        keys.worker(CITY, "w1"),
        keys.worker(CITY, "w{odd}"),
    ]
    assert {_hash_tag(k) for k in built} == {CITY}
    assert len(set(built)) == len(built)


def test_keys_of_different_cities_do_not_share_a_tag() -> None:
    """Two cities' keys carry different hash tags."""
    other = keys.City("lyon")
    assert _hash_tag(keys.seen(CITY)) != _hash_tag(keys.seen(other))
    assert _hash_tag(keys.order(keys.new_order_id(other))) == other


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_scripts_touch_keys_only_through_the_guard(name: str) -> None:
    """Every command on a key goes through call(), which refuses a key the caller did
    not declare in KEYS; redis.call itself is left for TIME and PUBLISH (the rendered
    command: SPUBLISH with sharded pub/sub), which take no key."""
    source = scripts.source(name)
    code = re.sub(r"--[^\n]*", "", source)
    direct = re.findall(r"redis\.p?call\(\s*([^,)]+)", code)
    assert set(direct) <= {"'TIME'", "PUBLISH", "command"}, direct
    assert direct.count("command") == 1  # the guard's own
    assert "if not DECLARED[key] then error(" in code


def test_the_guard_and_the_plan_are_in_every_script() -> None:
    """want() and needs() come with a script that plans; the head declares for all."""
    assert "for _, k in ipairs(KEYS) do DECLARED[k] = true end" in scripts.lib("declared")
    for name in ("tick", "accept", "reject", "cancel", "offer", "takeover", "forget_stale",
                 "connect", "disconnect", "set_status", "workflow", "index"):  # fmt: skip
        code = scripts.source(name)
        assert "local function needs()" in code and "local need = needs()" in code, name


def test_sharded_scripts_publish_with_spublish_in_the_city_tag() -> None:
    """With sharded pub/sub every script that publishes uses SPUBLISH, on channels in the
    city's hash tag (a script may publish only in its own slot)."""
    for name in scripts.SCRIPT_NAMES:
        classic, sharded = scripts.source(name), scripts.source(name, sharded=True)
        if "redis.call(PUBLISH" in classic:
            assert "local PUBLISH = 'SPUBLISH'" in sharded, name
            assert "local PUBLISH = 'PUBLISH'" in classic, name
        assert "'d:node:" not in sharded and "'d:order:" not in sharded, name
    assert _hash_tag(keys.node_channel(CITY, "n1")) == CITY
    assert _hash_tag(keys.order_channel(keys.new_order_id(CITY))) == CITY


# ---------------------------------------------------------------- the layout, written once

KEY_PARTS = {
    *layout.members(layout.CityKey).values(),
    *layout.members(layout.OrderKey).values(),
    *layout.members(layout.HoldField).values(),
}
FIELDS = {
    value
    for record in (layout.OrderField, layout.WorkerField, layout.CategoryField, layout.PerfField)
    for value in layout.members(record).values()
}
EVENTS = {
    *order_states.OrderEventType,
    *order_states.RECORDED_AS.values(),
    *order_states.OrderFact,
    *worker_states.WorkerEventType,
    *worker_states.WorkerFact,
    *worker_states.HoldAction,
}
# Words the scripts use as literals for something other than a field or an event:
# who acts ('customer', 'worker'), a frame's kind for the node holding a socket
# (server/hub.py: 'offer', 'cancelled', 'blocked'), why an offer was withdrawn or a
# job cancelled ('expired', 'cancelled', 'rejected'), tick's action 'step', the
# members of an event's JSON ('worker', 'by') and a stream entry's kind ('worker').
# Where a field or an event is named (a hash command, hmap, a step, an event), even
# these are refused: test_fields_and_events_are_named_from_the_layout.
OTHER_MEANINGS = {"customer", "worker", "by", "offer", "cancelled", "blocked", "expired",
                  "rejected", "step"}  # fmt: skip


def _literals(lua: str) -> list[str]:
    """The single-quoted string literals of Lua code, outside comments."""
    return re.findall(r"'([^'\n]*)'", re.sub(r"--[^\n]*", "", lua))


def _calls(lua: str, function: str) -> list[str]:
    """The argument text of every call of ``function`` (balanced parentheses)."""
    code = re.sub(r"--[^\n]*", "", lua)
    found = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(function)}\(", code):
        depth, at = 1, match.end()
        while depth:
            if code[at] == "'":  # a literal: its parentheses do not count
                at = code.index("'", at + 1)
            depth += {"(": 1, ")": -1}.get(code[at], 0)
            at += 1
        found.append(code[match.end() : at - 1])
    return found


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_script_spells_a_key(name: str) -> None:
    """A key is built by a rendered builder (worker_key(prefix, id)), never by
    concatenating a part of it: no literal is a key part, the root or ends a hash tag."""
    spelt = [
        lit for lit in _literals(_lua(name))
        if lit in KEY_PARTS or lit.startswith(layout.ROOT) or "}:" in lit
    ]  # fmt: skip
    assert spelt == [], f"{name}.lua spells key parts {spelt}: use the builders of scripts.py"


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_script_names_a_field_or_an_event_by_literal(name: str) -> None:
    """A hash field is O.<name> (W., C., P.), an event ORDER_EVENT.<name>,
    ORDER_FACT., WORKER_EVENT., WORKER_FACT., HOLD_ACTION.: rendered from the layout
    and the core, never a literal (but words that mean something else here)."""
    named = [lit for lit in _literals(_lua(name)) if lit in (FIELDS | EVENTS) - OTHER_MEANINGS]
    assert named == [], f"{name}.lua names {named} by literal"


@pytest.mark.parametrize("name", LUA_FILES)
def test_fields_and_events_are_named_from_the_layout(name: str) -> None:
    """Where a script names a field (a hash command, hmap) or an event (a step, a
    recorded event, a transition looked up), no literal is a field or an event name,
    not even one that means something else elsewhere."""
    text = _lua(name)
    hashes = [args for cmd in ("call", "redis.call") for args in _calls(text, cmd)
              if re.match(r"\s*'H", args)]  # fmt: skip
    fields = [lit for args in hashes + _calls(text, "hmap") for lit in _literals(args)[1:]]
    assert [f for f in fields if f in FIELDS] == [], f"{name}.lua: fields {fields}"
    events = [
        lit
        for function in ("order_step", "worker_step", "emit", "worker_event")
        for args in _calls(text, function)
        for lit in _literals(args.split(",")[2] if args.count(",") >= 2 else "")
    ]
    looked_up = re.findall(r"\]\s*\[\s*'(\w+)'\s*\]|row\[\s*'(\w+)'\s*\]", text)
    assert events == [] and looked_up == [], f"{name}.lua: events {events} {looked_up}"
    figures = set(layout.members(layout.PerfFigure).values())
    counted = [  # a performance counter's kind and figure (PERF_KIND, PERF_FIGURE)
        lit
        for function, at in (("tally", (3, 4)), ("tally_answer", (3,)))
        for args in _calls(text, function)
        for i in at
        for lit in _literals(args.split(",")[i] if args.count(",") >= i else "")
        if i == 3 or lit in figures
    ]
    assert counted == [], f"{name}.lua: counters {counted}"


def test_an_unknown_member_fails_at_render() -> None:
    """O.<name> that the layout lacks is an error when rendering, not a nil in Redis."""
    with pytest.raises(ValueError, match=r"O\.statte"):
        scripts.expand("local x = call('HGET', okey, O.statte)")
    with pytest.raises(ValueError, match=r"opts\.order"):
        scripts._check_options("workflow", "local oid = opts.order")


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_arguments_are_named(name: str) -> None:
    """The rule for arguments: a script with more than four besides the clock reads
    them from one packed map (ARGV[2], its Struct in server/store/arguments.py), by
    name; any other reads at most ARGV[5] by position (or a list tail in a loop)."""
    code = re.sub(r"--[^\n]*", "", _lua(name))
    positions = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", code)}
    if name in arguments.BY_SCRIPT:
        assert positions == {1, 2}
        assert "clock(ARGV[1]), cmsgpack.unpack(ARGV[2])" in code
        assert len(arguments.BY_SCRIPT[name].__struct_fields__) > 4
    else:
        assert max(positions, default=1) <= 5, positions
        assert "opts." not in code


def test_expand_writes_the_layout_in() -> None:
    """A builder call becomes the expression it stands for (nested ones too, an
    argument that is not a plain name in parentheses), a field or an event its value
    quoted; literals and comments are left as they are."""
    lua = (
        "want(worker_key(city_prefix(okey), o[O.worker]))  -- O.state\n"
        "call('HGET', okey, O.booking_due, 'O.state')\n"
        "order_step(okey, oid, ORDER_EVENT.give_up, now, nil)\n"
        "want(book_key(prefix, math.floor(now / 86400000)))"
    )
    assert scripts.expand(lua) == (
        "want(((string.match(okey, '^(d:{[^}]*}:)')) .. 'w:' .. (o['worker'])))  -- O.state\n"
        "call('HGET', okey, 'bdue', 'O.state')\n"
        "order_step(okey, oid, 'give_up', now, nil)\n"
        "want((prefix .. 'book:' .. (math.floor(now / 86400000))))"
    )


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_rendered_scripts_have_the_layout_written_in(name: str) -> None:
    """What Redis runs names no layout table and calls no key builder: each was
    written in by the renderer, so the layout costs a script nothing."""
    code = scripts._code(scripts.source(name))
    tables = set(re.findall(r"(?<![\w.])([A-Z][A-Z_]*)\.\w+", code))
    assert tables & set(scripts.NAMED) == set()
    assert scripts._names_used(code, scripts.BUILDERS) == set()
