"""Every error code the server can emit is documented.

These checks read the source: every code passed to a refusal, an error frame
or a script's ``refused()``, and every code the codec gives a bad frame, must
be in ``protocol/errors.py`` (whose table ``tests/protocol/test_wire_format.py`` holds
against PROTOCOL.md §14). The converse, that every documented code is sent to
some test client, is checked at the end of a run of the whole suite
(``tests/conftest.py``), whatever order the files ran in.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from protocol.codec import error_code
from protocol.errors import ERROR_CODES
from server.core import order_states, worker_states
from tests.support import repo_root

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
    """The codes codec.error_code answers are the documented malformed-frame codes."""
    answers = set(re.findall(r"return \"([a-z_]+)\"", inspect.getsource(error_code)))
    assert answers == DECODE_CODES
    assert set(ERROR_CODES) >= DECODE_CODES
