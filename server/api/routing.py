"""The HTTP routes' table, one ``Route`` per path, and the answers to a
request that no route takes (404 ``not_found``, 405 ``method_not_allowed``).

Starlette matches one ``Route`` per path and method: two routes registered
for one path (``GET`` and ``POST /v1/admin/webhooks``) would each answer a
405 whose ``Allow`` names only its own methods. Here every path's handlers
are grouped into one route that picks the handler by method, so ``Allow``
lists every method the path takes. Imports nothing from the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.errors import message
from protocol.messages import HttpError
from server.api.responses import json_response

Handler = Callable[[Request], Awaitable[Response]]
CODES = {404: "not_found", 405: "method_not_allowed"}


def grouped(table: Iterable[tuple[str, Handler, list[str]]]) -> list[Route]:
    """One route per path of ``table`` (path, handler, methods), in first-seen order.
    Raises ``ValueError`` for a path and method given twice."""
    by_path: dict[str, dict[str, Handler]] = {}
    for path, handler, methods in table:
        handlers = by_path.setdefault(path, {})
        for method in methods:
            if method in handlers:
                raise ValueError(f"{method} {path} has two handlers")
            handlers[method] = handler
    return [Route(path, _by_method(handlers), methods=list(handlers))
            for path, handlers in by_path.items()]  # fmt: skip


def _by_method(handlers: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)  # the route let only these methods in

    return endpoint


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, not that method) as coded JSON errors."""
    assert isinstance(exc, HTTPException)
    code = CODES.get(exc.status_code, "bad_request")
    response = json_response(HttpError(code=code, message=message(code)), exc.status_code)
    response.headers.update(exc.headers or {})
    return response
