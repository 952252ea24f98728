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
from redis.crc import key_slot
from redis.exceptions import RedisError

from server.process.logs import reason
from server.store.cluster import ClusterLink, node_url, server_urls
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
        sharded: bool = False,
        on_trouble: Callable[[], None] | None = None,
    ) -> None:
        # A cluster URL names several servers: classic pub/sub reaches every
        # subscriber from any of them, so one is used, the next when it fails.
        self.addresses = [Address(u) for u in server_urls(url)]
        # Shard channels (SSUBSCRIBE) live on the master of their slot: a
        # ShardedSubscriber runs one Subscriber per master and is told of trouble
        # (a lost connection, a slot moved away) so that it routes them again.
        self.on_trouble = on_trouble
        self._sub, self._unsub = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._kinds = (
            (b"smessage", b"ssubscribe", b"sunsubscribe")
            if sharded
            else (b"message", b"subscribe", b"unsubscribe")
        )
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
            self._protocol.write(self._sub, name)
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
            self._protocol.write(self._unsub, name)

    def handle(self, reply: list[object]) -> None:
        """One push from Redis: a message, a subscription's confirmation, a pong."""
        kind = reply[0]
        message, subscribed, unsubscribed = self._kinds
        if kind == message:
            channel, data = reply[1], reply[2]
            if isinstance(channel, bytes) and isinstance(data, bytes):
                self.on_message(channel, data)
        elif kind == subscribed:
            for confirmed in self._confirm.pop(reply[1], []):  # type: ignore[call-overload]
                if not confirmed.done():
                    confirmed.set_result(None)
        elif kind == unsubscribed and reply[1] in self.wanted and self.on_trouble is not None:
            self.on_trouble()  # Redis dropped a channel we want: its slot moved

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
                if self.on_trouble is not None:
                    self.on_trouble()
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
            if self.on_trouble is not None:
                self.on_trouble()

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
            protocol.write(self._sub, *names[i : i + CHUNK])
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


class ShardedSubscriber:
    """Shard channels on a Redis Cluster with sharded pub/sub (7.0 and newer): each
    channel is subscribed (SSUBSCRIBE) on the master that owns its slot, through a
    :class:`Subscriber` per master. Which master owns a slot is redis-py's slot
    map (the link's cluster client). When a master's connection is lost or Redis
    drops a channel whose slot moved (a failover, a resharding), the slot map is
    read again, every channel is subscribed where it lives now, and
    ``on_resubscribed`` is called: what was published meanwhile is re-read."""

    def __init__(
        self, link: ClusterLink, on_message: Handler, on_resubscribed: Callable[[], None], *,
        timeout_s: float = 2.0, ping_every_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.link = link
        self.on_message = on_message
        self.on_resubscribed = on_resubscribed
        self.timeout_s = timeout_s
        self.ping_every_s = ping_every_s
        self.wanted: set[bytes] = set()
        self.shards: dict[str, Subscriber] = {}  # by the master's URL
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._where: dict[bytes, str] = {}  # channel -> the master it is subscribed on
        self._trouble = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.reconnects = 0

    def _owner(self, channel: bytes) -> str:
        """The URL of the master that owns ``channel``'s slot, in the slot map now."""
        node = self.link.client.nodes_manager.get_node_from_slot(key_slot(channel))
        return node_url(self.link.url, node.host, int(node.port))

    def _shard(self, owner: str) -> Subscriber:
        shard = self.shards.get(owner)
        if shard is None:
            shard = Subscriber(
                owner, self.on_message, lambda: None,
                timeout_s=self.timeout_s, ping_every_s=self.ping_every_s, sharded=True,
                on_trouble=self._trouble.set,
            )  # fmt: skip
            self.shards[owner] = shard
            self._runs[owner] = asyncio.get_running_loop().create_task(shard.run())
        return shard

    async def subscribe(self, channel: str) -> None:
        """Subscribe on the channel's master and wait for it to confirm (TimeoutError
        past the deadline)."""
        name = channel.encode()
        self.wanted.add(name)
        owner = self._owner(name)
        self._where[name] = owner
        await self._shard(owner).subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        name = channel.encode()
        self.wanted.discard(name)
        owner = self._where.pop(name, None)
        if owner is not None and owner in self.shards:
            self.shards[owner].unsubscribe(channel)

    async def run(self) -> None:
        """Route channels again whenever a shard is in trouble, until cancelled."""
        await self.link.call("PING")  # the cluster client reads the slot map
        self.subscribed.set()
        try:
            while True:
                await self._trouble.wait()
                self.subscribed.clear()
                await self._route_again()
                self.reconnects += 1
                self.subscribed.set()
                log.warning("pub/sub: %d shard channels subscribed again on %d masters",
                            len(self.wanted), len(self.shards))  # fmt: skip
                self.on_resubscribed()
        finally:
            self.close()

    async def _route_again(self) -> None:
        """Read the slot map and subscribe every wanted channel where it lives now."""
        backoff = 0.1
        while True:
            await asyncio.sleep(backoff)  # let a failover settle before asking
            self._trouble.clear()
            try:
                async with asyncio.timeout(self.timeout_s * 2):
                    await self.link.client.nodes_manager.initialize()
                    moved = {c: self._owner(c) for c in self.wanted}
                    for channel, owner in moved.items():
                        old = self._where.get(channel)
                        if old is not None and old != owner and old in self.shards:
                            self.shards[old].unsubscribe(channel.decode())
                        self._where[channel] = owner
                    await asyncio.gather(*(self._shard(owner).subscribe(c.decode())
                                           for c, owner in moved.items()))  # fmt: skip
                self._drop_idle()
                if not self._trouble.is_set():
                    return
            except (TimeoutError, OSError, RedisError, MuxClosed) as exc:
                log.warning("pub/sub: cannot route shard channels yet (%s); again in %.1f s",
                            reason(exc), backoff)  # fmt: skip
            backoff = min(backoff * 2, 2.0)

    def _drop_idle(self) -> None:
        """Stop the subscribers of masters that hold none of our channels now."""
        used = set(self._where.values())
        for owner in [o for o in self.shards if o not in used]:
            self.shards.pop(owner).close()
            self._runs.pop(owner).cancel()

    def close(self) -> None:
        for shard in self.shards.values():
            shard.close()
        for task in self._runs.values():
            task.cancel()
