"""Every error code the server can emit is documented, and every documented one is emitted.

The first check reads the server's source: every code passed to a refusal,
an error frame or a script's ``refused()`` must be in ``protocol/errors.py``
(whose table ``tests/test_protocol.py`` holds against PROTOCOL.md §14). The
second runs last (this file's name sorts last): the test clients remember
every code they were sent (``tests.support.SEEN_CODES``), and after a run of
the whole suite each documented code must have been seen at least once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol.codec import error_code
from protocol.errors import ERROR_CODES
from server.core import order_states, worker_states
from tests.support import SEEN_CODES, repo_root

SERVER = repo_root() / "server"
# A code literal where the server refuses something: Refused("x"), _error("x"),
# code="x", ClientError subclasses' super().__init__("x", ...), refused('x') in Lua.
CODE_LITERAL = re.compile(
    r"""(?:Refused\(|_error\(|refused\(|code\s*=\s*|super\(\).__init__\(|_close_with\(ws,\s*)["']([a-z_]+)["']"""
)
# What codec.error_code can answer for a frame that does not decode.
DECODE_CODES = {"bad_json", "unknown_type", "missing_field", "out_of_range", "invalid_field"}


def _sources() -> list[Path]:
    return [*SERVER.rglob("*.py"), *SERVER.rglob("*.lua")]


def test_every_code_the_server_uses_is_documented() -> None:
    """Each code literal in the server's source, and each rendered refusal, is a protocol code."""
    used = {m for path in _sources() for m in CODE_LITERAL.findall(path.read_text())}
    used |= set(worker_states.REFUSAL_CODES.values()) | set(order_states.ANSWER_REFUSALS.values())
    used.discard("illegal_transition")  # the core's own default; never sent (see core/errors.py)
    used.discard("stale")  # cancel.lua's answer to a caller that read the order before a step;
    # the workflow reads again (server/services/workflows.py), so it is never sent
    assert used, "the pattern found no codes: it no longer matches the source"
    assert used - set(ERROR_CODES) == set()


def test_decode_errors_map_to_documented_codes() -> None:
    """Whatever error_code answers is one of the documented malformed-frame codes."""
    assert set(ERROR_CODES) >= DECODE_CODES
    assert error_code.__module__ == "protocol.codec"


def test_every_documented_code_was_emitted(request: pytest.FixtureRequest) -> None:
    """After the whole suite, every documented error code was sent to some test client."""
    session = request.session
    ran = {Path(str(item.path)).name for item in session.items}
    every = {p.name for p in (repo_root() / "tests").glob("test_*.py")}
    if ran != every or len(session.items) != session.testscollected:
        pytest.skip("needs the whole suite: only a full run sees every code")
    missing = sorted(set(ERROR_CODES) - SEEN_CODES)
    assert not missing, f"no test was sent: {', '.join(missing)}"
