"""One pipelined Redis connection shared by every coroutine of the node.

The dispatch path runs several scripts per order; through redis-py each call
borrows a pooled connection and packs its command in Python, which the bench
measured at about 30% of the server's CPU at 500 orders/s. Here commands are
packed by hiredis and written at once on a single connection; replies come
back in order and are matched to their callers by a queue of futures. Redis
runs commands one at a time anyway, so one connection loses nothing.

Errors: a reply error comes back as :class:`ReplyError` (not raised here, the
caller decides); a lost connection fails every waiting call with
:class:`MuxClosed`, and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url

Reply = Any  # what hiredis decodes: bytes, int, list, None, ReplyError


class ReplyError(Exception):
    """Redis answered a command with an error (``-ERR ...``)."""


class MuxClosed(ConnectionError):
    """The connection to Redis is gone; the call may or may not have run."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.error: Exception | None = None
        self.outgoing: list[bytes] = []

    def flush(self) -> None:
        """Write every command queued in this loop iteration with one system call."""
        if self.transport is not None and self.outgoing:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if not future.done():  # a cancelled caller's reply is read and dropped
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = MuxClosed(f"redis connection lost: {exc or 'closed'}")
        self.transport = None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.error)


class Mux:
    """A pipelined connection to the Redis at ``url`` (``redis://``, ``rediss://`` or
    ``unix://``; user, password and database number are honoured)."""

    def __init__(self, url: str) -> None:
        self.options = parse_url(url)
        # rediss:// gets TLS with the system's trust store and host name checks.
        tls = self.options.get("connection_class") is SSLConnection
        self._ssl = ssl.create_default_context() if tls else None
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if "path" in self.options:
            _, protocol = await loop.create_unix_connection(_Protocol, self.options["path"])
        else:
            host, port = self.options.get("host", "localhost"), self.options.get("port", 6379)
            _, protocol = await loop.create_connection(_Protocol, host, port, ssl=self._ssl)
        for command in self._setup_commands():
            reply = await self._send(protocol, command)
            if isinstance(reply, ReplyError):
                raise MuxClosed(f"redis refused {command[0]}: {reply}")
        return protocol

    def _setup_commands(self) -> list[tuple[str | int, ...]]:
        commands: list[tuple[str | int, ...]] = []
        password, username = self.options.get("password"), self.options.get("username")
        if password:
            commands.append(("AUTH", username, password) if username else ("AUTH", password))
        if self.options.get("db"):
            commands.append(("SELECT", int(self.options["db"])))
        return commands

    @staticmethod
    def _send(protocol: _Protocol, command: tuple[Any, ...]) -> asyncio.Future[Reply]:
        """Queue ``command``; the commands of one loop iteration leave in one write."""
        if protocol.transport is None:
            raise protocol.error or MuxClosed("not connected")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        if not protocol.outgoing:
            loop.call_soon(protocol.flush)
        protocol.outgoing.append(hiredis.pack_command(command))
        protocol.waiting.append(future)
        return future

    async def call(self, *command: Any) -> Reply:
        """Send one command and wait for its reply (a ReplyError is returned, not raised)."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            async with self._lock:
                if self._protocol is None or self._protocol.transport is None:
                    self._protocol = await self._connect()
                protocol = self._protocol
        return await self._send(protocol, command)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
