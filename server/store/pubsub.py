"""The node's pub/sub connection: subscribed to what the hub asks, always.

One connection in subscribe mode, read by hiredis. :meth:`Subscriber.run`
keeps it alive: it connects (with a deadline), subscribes to every wanted
channel, pings every ``ping_every_s`` and drops the connection when no pong
comes within ``timeout_s`` (a stopped or unreachable Redis sends nothing, so
silence alone would never be noticed). After a reconnect, once every channel
is subscribed again, it calls ``on_resubscribed``: messages published while
the connection was down are lost, and the hub re-reads what they carried.

:meth:`Subscriber.subscribe` returns once Redis has confirmed the
subscription, so a caller that reads state after it misses no message
published after that state.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable

import hiredis

from server.logs import reason
from server.store.cluster import server_urls
from server.store.mux import Address, MuxClosed, ReplyError

log = logging.getLogger(__name__)

Handler = Callable[[bytes, bytes], None]
CHUNK = 500  # channels per SUBSCRIBE command when subscribing again


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Subscriber) -> None:
        self.owner = owner
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answers: collections.deque[asyncio.Future[object]] = collections.deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.owner.last_heard = asyncio.get_running_loop().time()
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
                self.owner.handle(reply)
            elif self.answers:  # AUTH and the like, before subscribing
                self.answers.popleft().set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        while self.answers:
            self.answers.popleft().set_exception(MuxClosed("pub/sub connection lost"))

    def write(self, *command: str | bytes) -> None:
        if self.transport is not None:
            self.transport.write(hiredis.pack_command(command))  # type: ignore[arg-type]


class Subscriber:
    """Channels wanted by the node, kept subscribed across reconnects."""

    def __init__(
        self,
        url: str,
        on_message: Handler,
        on_resubscribed: Callable[[], None],
        *,
        timeout_s: float = 2.0,
        ping_every_s: float = 1.0,
    ) -> None:
        # A cluster URL names several servers: classic pub/sub reaches every
        # subscriber from any of them, so one is used, the next when it fails.
        self.addresses = [Address(u) for u in server_urls(url)]
        self.address = self.addresses[0]
        self.on_message = on_message
        self.on_resubscribed = on_resubscribed
        self.timeout_s = timeout_s
        self.ping_every_s = ping_every_s
        self.wanted: set[bytes] = set()
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._protocol: _Protocol | None = None
        self.subscribed = asyncio.Event()  # connected, with every wanted channel confirmed
        self.last_heard = 0.0
        self.reconnects = 0

    # ------------------------------------------------------------ channels

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for Redis to confirm (raises TimeoutError past the deadline)."""
        name = channel.encode()
        self.wanted.add(name)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(name, []).append(confirmed)
        if self._protocol is not None:
            self._protocol.write("SUBSCRIBE", name)
        try:
            async with asyncio.timeout(self.timeout_s):
                await confirmed
        finally:
            waiting = self._confirm.get(name, [])
            if confirmed in waiting:
                waiting.remove(confirmed)

    def unsubscribe(self, channel: str) -> None:
        name = channel.encode()
        self.wanted.discard(name)
        if self._protocol is not None:
            self._protocol.write("UNSUBSCRIBE", name)

    def handle(self, reply: list[object]) -> None:
        """One push from Redis: a message, a subscription's confirmation, a pong."""
        kind = reply[0]
        if kind == b"message":
            channel, data = reply[1], reply[2]
            if isinstance(channel, bytes) and isinstance(data, bytes):
                self.on_message(channel, data)
        elif kind == b"subscribe":
            for confirmed in self._confirm.pop(reply[1], []):  # type: ignore[call-overload]
                if not confirmed.done():
                    confirmed.set_result(None)

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        """Stay connected and subscribed until cancelled."""
        backoff = 0.1
        first = True
        while True:
            try:
                protocol = await self._connect()
            except (OSError, TimeoutError, MuxClosed, ReplyError) as exc:
                log.warning("pub/sub: cannot connect (%s); again in %.1f s", reason(exc), backoff)
                self._next_address()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if not first:
                self.reconnects += 1
                log.warning("pub/sub: subscribed again to %d channels", len(self.wanted))
                self.on_resubscribed()
            first = False
            await self._watch(protocol)
            self.subscribed.clear()
            self._protocol = None
            log.warning("pub/sub: connection lost; reconnecting")
            self._next_address()

    def _next_address(self) -> None:
        i = self.addresses.index(self.address)
        self.address = self.addresses[(i + 1) % len(self.addresses)]

    async def _connect(self) -> _Protocol:
        async with asyncio.timeout(self.timeout_s):
            protocol = await self.address.open(lambda: _Protocol(self))
            try:
                for command in self.address.login(select=False):
                    answer = asyncio.get_running_loop().create_future()
                    protocol.answers.append(answer)
                    protocol.write(*map(str, command))
                    if isinstance(reply := await answer, ReplyError):
                        raise MuxClosed(f"redis refused {command[0]}: {reply}")
                self._protocol = protocol
                await self._subscribe_all(protocol, sorted(self.wanted))
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.abort()
                self._protocol = None
                raise
        self.subscribed.set()
        return protocol

    async def _subscribe_all(self, protocol: _Protocol, channels: Iterable[bytes]) -> None:
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[None]] = []
        names = list(channels)
        for name in names:
            confirmed = loop.create_future()
            self._confirm.setdefault(name, []).append(confirmed)
            pending.append(confirmed)
        for i in range(0, len(names), CHUNK):
            protocol.write("SUBSCRIBE", *names[i : i + CHUNK])
        if pending:
            await asyncio.gather(*pending)

    async def _watch(self, protocol: _Protocol) -> None:
        """Ping until the connection is lost or stays silent past the deadline."""
        loop = asyncio.get_running_loop()
        self.last_heard = loop.time()
        while not protocol.lost.done():
            protocol.write("PING")
            await asyncio.wait({protocol.lost}, timeout=self.ping_every_s)
            if loop.time() - self.last_heard > self.timeout_s and protocol.transport is not None:
                log.warning(
                    "pub/sub: no answer for %.1f s; dropping the connection", self.timeout_s
                )
                protocol.transport.abort()
                await protocol.lost

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
