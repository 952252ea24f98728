"""One pipelined Redis connection shared by every coroutine of the node.

The dispatch path runs several scripts per order; through redis-py each call
borrows a pooled connection and packs its command in Python, which the bench
measured at about 30% of the server's CPU at 500 orders/s. Here commands are
packed by hiredis and written at once on a single connection; replies come
back in order and are matched to their callers by a queue of futures. Redis
runs commands one at a time anyway, so one connection loses nothing.

Every wait has a deadline. Connecting (TCP or Unix socket, TLS, AUTH,
SELECT) must finish within ``connect_timeout_s``; once connected, a
connection that has calls waiting and delivers no reply for ``timeout_s`` is
dropped (a hung or stopped Redis, a half-open TCP connection), and every
waiting call fails at once with :class:`MuxTimeout`. The next call connects
again. TCP connections have keepalive on.

Errors::

    MuxError (ConnectionError)   the call may or may not have run
    ├── MuxClosed                the connection is gone, or could not be made
    └── MuxTimeout               no reply within the deadline; the connection was dropped

A reply error (``-ERR ...``) is not raised: it comes back as a
:class:`ReplyError` value, and the caller decides.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url

Reply = Any  # what hiredis decodes: bytes, int, list, None, ReplyError
P = TypeVar("P", bound=asyncio.Protocol)

# After a failed connect, calls fail at once for this long instead of each
# trying again: a Redis that is down is not hammered by every waiting client.
RETRY_AFTER_S = 0.25


class ReplyError(Exception):
    """Redis answered a command with an error (``-ERR ...``)."""


class MuxError(ConnectionError):
    """The call did not get a reply; it may or may not have run."""


class MuxClosed(MuxError):
    """The connection to Redis is gone, or could not be made."""


class MuxTimeout(MuxError):
    """Redis gave no reply within the deadline; the connection was dropped."""


def _keepalive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class Address:
    """Where a Redis is and how to log in, from a ``redis://``, ``rediss://`` or
    ``unix://`` URL (user, password and database number are honoured)."""

    def __init__(self, url: str) -> None:
        self.options = parse_url(url)
        # rediss:// gets TLS with the system's trust store and host name checks.
        tls = self.options.get("connection_class") is SSLConnection
        self.ssl = ssl.create_default_context() if tls else None

    async def open(self, factory: Callable[[], P]) -> P:
        """A connected protocol from ``factory`` (no deadline: the caller sets one)."""
        loop = asyncio.get_running_loop()
        if "path" in self.options:
            transport, protocol = await loop.create_unix_connection(factory, self.options["path"])
        else:
            host, port = self.options.get("host", "localhost"), self.options.get("port", 6379)
            transport, protocol = await loop.create_connection(factory, host, port, ssl=self.ssl)
        _keepalive(transport)
        return protocol

    def login(self, select: bool = True) -> list[tuple[str | int, ...]]:
        """The commands that start a session: AUTH, then SELECT (unless ``select`` is off)."""
        commands: list[tuple[str | int, ...]] = []
        password, username = self.options.get("password"), self.options.get("username")
        if password:
            commands.append(("AUTH", username, password) if username else ("AUTH", password))
        if select and self.options.get("db"):
            commands.append(("SELECT", int(self.options["db"])))
        return commands


class Health:
    """When the connection last delivered a reply, and last failed (loop time)."""

    def __init__(self) -> None:
        self.last_reply = 0.0
        self.last_failure = 0.0

    def failed(self) -> None:
        self.last_failure = asyncio.get_running_loop().time()

    @property
    def answering(self) -> bool:
        """Whether Redis answered since the last failure."""
        return self.last_reply > self.last_failure


class _Protocol(asyncio.Protocol):
    def __init__(self, health: Health) -> None:
        self.health = health
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.error: Exception | None = None
        self.outgoing: list[bytes] = []
        self.progress = 0.0  # loop time of the last reply, or of a send to an idle connection

    def flush(self) -> None:
        """Write every command queued in this loop iteration with one system call."""
        if self.transport is not None and self.outgoing:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.progress = self.health.last_reply = asyncio.get_running_loop().time()
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if not future.done():  # a cancelled caller's reply is read and dropped
                future.set_result(reply)

    def fail(self, error: MuxError) -> None:
        """Fail every waiting call with ``error`` and drop the connection."""
        self.error = error
        self.health.failed()
        transport, self.transport = self.transport, None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if transport is not None:
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None or self.waiting:
            self.fail(MuxClosed(f"redis connection lost: {exc or 'closed'}"))


class Mux:
    """A pipelined connection to the Redis at ``url``, with deadlines."""

    def __init__(self, url: str, timeout_s: float = 2.0, connect_timeout_s: float = 2.0) -> None:
        self.address = Address(url)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._down_until = 0.0
        self._last_error: Exception | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.health = Health()
        self.timeouts = 0
        self.connects = 0
        self.errors: collections.Counter[str] = collections.Counter()  # failed calls by kind
        self.on_round_trip: Callable[[float], None] | None = None  # told each call's seconds

    async def _connect(self) -> _Protocol:
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                protocol = await self.address.open(lambda: _Protocol(self.health))
                for command in self.address.login():
                    reply = await self._send(protocol, command)
                    if isinstance(reply, ReplyError):
                        raise MuxClosed(f"redis refused {command[0]}: {reply}")
        except BaseException:
            if protocol is not None:  # a half-made session is not left open
                protocol.fail(MuxClosed("connect failed"))
            raise
        self.connects += 1
        return protocol

    async def _connected(self) -> _Protocol:
        """The live connection; one connect attempt at a time, shared by every caller."""
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            return protocol
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            if loop.time() < self._down_until:
                raise MuxClosed(f"redis unreachable: {self._last_error}")
            self._connecting = loop.create_future()
            try:
                protocol = await self._connect()
            except (OSError, TimeoutError, MuxError) as exc:
                self.health.failed()
                self._down_until = loop.time() + RETRY_AFTER_S
                self._last_error = exc
                error = MuxClosed(f"redis unreachable: {exc or type(exc).__name__}")
                self._connecting.set_exception(error)
                self._connecting.exception()  # retrieved: no "never retrieved" warning
                raise error from exc
            finally:
                pending, self._connecting = self._connecting, None
            self._protocol = protocol
            pending.set_result(protocol)
            self._arm_watchdog()
            return protocol
        return await asyncio.shield(self._connecting)

    def _arm_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self.timeout_s / 4, self._check)

    def _check(self) -> None:
        """Drop a connection that has calls waiting and made no progress for the deadline."""
        protocol = self._protocol
        self._watchdog = None
        if protocol is None or protocol.transport is None:
            return
        loop = asyncio.get_running_loop()
        if protocol.waiting and loop.time() - protocol.progress > self.timeout_s:
            self.timeouts += 1
            protocol.fail(MuxTimeout(f"redis gave no reply within {self.timeout_s:g} s"))
            return
        self._arm_watchdog()

    @staticmethod
    def _send(protocol: _Protocol, command: tuple[Any, ...]) -> asyncio.Future[Reply]:
        """Queue ``command``; the commands of one loop iteration leave in one write."""
        if protocol.transport is None:
            raise protocol.error or MuxClosed("not connected")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        if not protocol.outgoing:
            loop.call_soon(protocol.flush)
        if not protocol.waiting:
            protocol.progress = loop.time()
        protocol.outgoing.append(hiredis.pack_command(command))
        protocol.waiting.append(future)
        return future

    async def call(self, *command: Any) -> Reply:
        """Send one command and wait for its reply (a ReplyError is returned, not raised)."""
        return (await self.call_many((command,)))[0]

    async def call_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Reply]:
        """Send several commands in one write and wait for all their replies, in order."""
        start = asyncio.get_running_loop().time()
        try:
            protocol = self._protocol
            if protocol is None or protocol.transport is None:
                protocol = await self._connected()
            if len(commands) == 1:
                replies = [await self._send(protocol, commands[0])]
            else:
                replies = list(await asyncio.gather(*(self._send(protocol, c) for c in commands)))
        except MuxError as exc:
            self.errors["timeout" if isinstance(exc, MuxTimeout) else "connection"] += 1
            raise
        if self.on_round_trip is not None:
            self.on_round_trip(asyncio.get_running_loop().time() - start)
        return replies

    @property
    def connected(self) -> bool:
        return self._protocol is not None and self._protocol.transport is not None

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
            self._protocol.transport = None
