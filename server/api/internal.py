"""The last line of defence for HTTP requests: an unexpected error is logged
once, with its traceback, and answered with a coded 500; the connection stays
open for the client's next request.

Starlette's own last handler answers too, but then raises the error again to
uvicorn, which drops the connection. Client errors (``ClientError``) and a
lost store (``StoreUnavailable``) never get here: the app's exception
handlers answer them first.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol import codec
from protocol.errors import message
from protocol.messages import HttpError

log = logging.getLogger(__name__)

BODY = codec.encode(HttpError(code="internal", message=message("internal")))


class InternalErrors:
    """ASGI middleware: an exception escaping an HTTP handler becomes a 500 ``internal``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # too late for an answer: uvicorn closes the connection
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(BODY)).encode())]  # fmt: skip
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": BODY})
