"""The worker socket's table of handlers: complete, rightly paired, free of the socket.

What each handler does is tested through a real socket (api/test_worker_socket.py,
system/test_lifecycle.py and the others); these check the table those tests go through.
"""

from __future__ import annotations

import ast
import inspect
from typing import get_args, get_type_hints

import msgspec
import pytest

from protocol.messages import LocationReported, WorkerMessage
from server.api import worker_handlers
from server.api.worker_handlers import HANDLERS, Worker

KINDS: list[type[msgspec.Struct]] = list(get_args(WorkerMessage))


def test_every_message_but_location_has_a_handler() -> None:
    """Each message a worker may send is in the table, but location, which has its own path."""
    assert set(HANDLERS) == set(KINDS) - {LocationReported}
    assert get_type_hints(Worker.locate)["msg"] is LocationReported


@pytest.mark.parametrize("kind", list(HANDLERS), ids=lambda kind: kind.__name__)
def test_each_handler_takes_the_message_it_is_filed_under(kind: type[msgspec.Struct]) -> None:
    """The table's value type cannot pair a handler with its message; this does."""
    handler = HANDLERS[kind]
    assert inspect.iscoroutinefunction(handler)
    assert get_type_hints(handler)["msg"] is kind


def test_handlers_do_not_touch_the_socket() -> None:
    """The handlers answer through an Outlet: they import no web framework, nor the transport."""
    banned = ("starlette", "websockets", "uvicorn", "server.api.worker_socket")
    tree = ast.parse(inspect.getsource(worker_handlers))
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert not name.startswith(banned), name
