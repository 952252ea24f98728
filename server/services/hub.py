"""The node's switchboard: which sockets this process holds, and the pub/sub
messages that reach them.

Scripts publish a worker's frames on ``d:{city}:inbox:<node>`` of the node its
socket is on, in a msgpack envelope ``[kind, worker, ref, frame]`` that no
content can split; order events and worker positions go on
``d:{city}:watch:<order>``, which a node subscribes to while it has a customer
following that order. So a worker connected to node A gets an offer made by
node B, and a customer on B sees what happened on A. Channels carry the city's
hash tag: on a Redis Cluster with sharded pub/sub (7.0+) each lives on the
shard of its city (:class:`~server.store.pubsub.ShardedSubscriber`); elsewhere
classic pub/sub carries them.

A message that does not decode is logged and skipped: nothing a message
holds can stop the listener. After the pub/sub connection was lost and made
again, whatever was published meanwhile is gone, so every link is told to
``resync``: a worker socket re-reads its offer and jobs, a live follower the
events after the last one it sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

import msgspec

from protocol.ids import SubjectId
from server.store import keys
from server.store.cluster import ClusterLink
from server.store.engine import StoreUnavailable
from server.store.pubsub import ShardedSubscriber, Subscriber

log = logging.getLogger(__name__)


class NodeMessage(msgspec.Struct, array_like=True, frozen=True):
    """What a script sends to the node holding a worker's socket. ``ref`` is the
    order for a frame, the replaced session for ``replaced``."""

    kind: Literal["offer", "withdrawn", "cancelled", "job", "begun", "hold", "blocked", "replaced"]
    worker: SubjectId
    ref: str
    frame: str


_envelope = msgspec.msgpack.Decoder(NodeMessage)
_CATALOGUE = keys.CATALOGUE_CHANNEL.encode()


class WorkerLink(Protocol):
    """What the hub needs of a worker's socket."""

    session: str

    @property
    def city(self) -> str: ...

    def deliver(self, kind: str, order_id: str, frame: str) -> None: ...

    def replaced(self) -> None: ...

    def resync(self) -> None: ...

    def restart(self) -> None: ...


class LiveLink(Protocol):
    """What the hub needs of a customer's live order socket."""

    def deliver(self, payload: bytes) -> None: ...

    def resync(self) -> None: ...


class Hub:
    """Holds this node's worker links and order watchers; routes pub/sub messages to them."""

    def __init__(
        self, redis_url: str, node: str, timeout_s: float, cities: Iterable[str],
        sharded: ClusterLink | None = None,
    ) -> None:  # fmt: skip
        self.node = node
        self.workers: dict[str, WorkerLink] = {}
        self.watchers: dict[str, set[LiveLink]] = {}
        ping_every_s = min(1.0, timeout_s / 2)
        self.subscriber: Subscriber | ShardedSubscriber
        handlers = (self._on_message, self._resync)
        if sharded is not None:
            self.subscriber = ShardedSubscriber(
                sharded, *handlers, timeout_s=timeout_s, ping_every_s=ping_every_s
            )
        else:
            self.subscriber = Subscriber(
                redis_url, *handlers, timeout_s=timeout_s, ping_every_s=ping_every_s
            )
        self.on_catalogue: Callable[[], None] = lambda: None
        self._inboxes = {keys.node_channel(city, node) for city in cities}
        self._inbox_names = {name.encode() for name in self._inboxes}
        self.bad_messages = 0

    async def run(self) -> None:
        """Keep the pub/sub connection up until cancelled."""
        await self.subscriber.run()

    async def start(self) -> None:
        """Subscribe to this node's channel in every city and to the catalogue's
        changes (``run`` must be running)."""
        channels = [*sorted(self._inboxes), keys.CATALOGUE_CHANNEL]
        await asyncio.gather(*(self._subscribe(channel) for channel in channels))

    async def _subscribe(self, channel: str) -> None:
        try:
            await self.subscriber.subscribe(channel)
        except TimeoutError as exc:
            raise StoreUnavailable(f"redis did not confirm a subscription to {channel}") from exc

    # ------------------------------------------------------------ workers

    def attach(self, worker_id: str, link: WorkerLink) -> None:
        """Route ``worker_id``'s frames to ``link``; an older link of the same worker is closed."""
        old = self.workers.get(worker_id)
        self.workers[worker_id] = link
        if old is not None and old is not link:
            old.replaced()

    def restart_workers(self) -> None:
        """Close every worker socket with 1012: this node's routes were taken from it."""
        for link in tuple(self.workers.values()):
            link.restart()

    def detach(self, worker_id: str, link: WorkerLink) -> bool:
        """Forget ``link``; False if a newer link of the worker has taken over."""
        if self.workers.get(worker_id) is link:
            del self.workers[worker_id]
            return True
        return False

    # ------------------------------------------------------------ order watchers

    async def watch(self, order_id: str, link: LiveLink) -> None:
        """Deliver the order's live payloads to ``link`` from now on: when this
        returns, Redis has confirmed the subscription."""
        group = self.watchers.setdefault(order_id, set())
        group.add(link)
        if len(group) == 1:
            try:
                await self._subscribe(keys.order_channel(order_id))
            except StoreUnavailable:
                self.unwatch(order_id, link)
                raise

    def unwatch(self, order_id: str, link: LiveLink) -> None:
        group = self.watchers.get(order_id)
        if group is None:
            return
        group.discard(link)
        if not group:
            del self.watchers[order_id]
            self.subscriber.unsubscribe(keys.order_channel(order_id))

    # ------------------------------------------------------------ messages

    def _on_message(self, channel: bytes, data: bytes) -> None:
        try:
            if channel in self._inbox_names:
                self._to_worker(data)
            elif channel == _CATALOGUE:
                self.on_catalogue()
            elif (at := channel.find(b":watch:")) >= 0:
                self._to_watchers(channel[at + 7 :].decode(), data)
        except Exception:  # a bad message never stops the listener
            self.bad_messages += 1
            log.exception("pub/sub: skipped a message on %r", channel[:80])

    def _to_worker(self, data: bytes) -> None:
        try:
            msg = _envelope.decode(data)
        except msgspec.DecodeError as exc:
            self.bad_messages += 1
            log.warning("pub/sub: skipped a malformed node message (%s): %r", exc, data[:120])
            return
        link = self.workers.get(msg.worker)
        if link is None:
            return
        if msg.kind == "replaced":
            if link.session == msg.ref:
                link.replaced()
        else:
            link.deliver(msg.kind, msg.ref, msg.frame)

    def _to_watchers(self, order_id: str, data: bytes) -> None:
        for link in tuple(self.watchers.get(order_id, ())):
            link.deliver(data)

    def _resync(self) -> None:
        self.on_catalogue()
        for worker in tuple(self.workers.values()):
            worker.resync()
        for group in tuple(self.watchers.values()):
            for link in tuple(group):
                link.resync()

    def close(self) -> None:
        self.subscriber.close()
