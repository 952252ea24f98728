"""Deadlines and limits at the connection level, below the ASGI app.

uvicorn times out idle keep-alive connections but not a request whose
headers never finish, nor a connection that sends nothing at all, and its
WebSocket sends wait for the client's window to open for as long as it
takes. Here its two protocol classes get what a server facing the internet
needs:

- HTTP: a request's headers (and a new connection's first request) must
  arrive within ``header_timeout_s``, else the connection is dropped; a
  WebSocket upgrade past ``max_connections`` open connections is refused
  with 503, as uvicorn already does for plain requests. Both are logged.
- WebSocket: a send that cannot proceed for ``send_timeout_s`` (the client
  stopped reading) aborts the connection; after a close for misbehaving
  (1008, 4008) nothing more is read from the client, and the connection is
  cut a second later; at shutdown, a connection still open
  ``shutdown_timeout_s`` after the close frame was sent is aborted.

Request bodies get their deadline in the app (``orders_http``), where the
answer can be a coded 408.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from server.process.logs import Throttled
from server.process.settings import Settings

log = logging.getLogger(__name__)

# Close codes that end a socket for misbehaving: the server reads nothing more from it.
ABANDONED = frozenset({1008, 4008})
ABANDON_AFTER_S = 1.0


class Limits(NamedTuple):
    header_timeout_s: float
    send_timeout_s: float
    shutdown_timeout_s: float
    max_connections: int


_slow_headers = Throttled(log, "dropped a connection whose request headers took over %.1f s")
_full = Throttled(log, "refused a WebSocket: %d connections open (max_connections)")
_stuck = Throttled(log, "aborted a WebSocket whose client stopped reading for %.1f s")


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with a deadline on sends and on shutdown."""

    limits: Limits

    async def send(self, message: Any) -> None:
        if not self.writable.is_set():
            try:
                async with asyncio.timeout(self.limits.send_timeout_s):
                    await self.writable.wait()
            except TimeoutError:
                _stuck(self.limits.send_timeout_s)
                self.transport.abort()
                raise ClientDisconnected from None
        await super().send(message)
        if message["type"] == "websocket.close" and message.get("code") in ABANDONED:
            # A flooder or a client that does not read: parse nothing more of what it sends
            # (a flood would keep the loop busy), let the close frame go, then hang up.
            self.transport.pause_reading()
            self.loop.call_later(ABANDON_AFTER_S, self.transport.abort)

    def shutdown(self) -> None:
        super().shutdown()
        self.loop.call_later(self.limits.shutdown_timeout_s, self.transport.abort)


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline on request headers and a cap on upgrades."""

    limits: Limits
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        _slow_headers(self.limits.header_timeout_s)
        self.transport.abort()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        if len(self.connections) > self.limits.max_connections:
            _full(len(self.connections))
            self.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
                b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable"
            )
            self.transport.close()
            return
        super().handle_websocket_upgrade()
        # The socket is the WebSocket protocol's now. The parser holds this
        # protocol's bound methods and this protocol the parser: let the
        # reference count free both now instead of the cycle collector
        # (about 15 objects per connection, measured with gc.DEBUG_SAVEALL).
        self.parser = None  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocols(settings: Settings) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP and WebSocket protocol classes, with ``settings``' deadlines."""
    limits = Limits(settings.header_timeout_s, settings.send_timeout_s,
                    settings.shutdown_timeout_s, settings.max_connections)  # fmt: skip
    http = type("GuardedHttp", (GuardedHttp,), {"limits": limits})
    ws = type("GuardedWebSocket", (GuardedWebSocket,), {"limits": limits})
    return http, ws
