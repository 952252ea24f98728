"""The node's switchboard: which sockets this process holds, and the pub/sub
listener that delivers frames to them.

Scripts publish a worker's frames on ``d:node:<node>`` of the node its socket
is on, with a header line ``<kind> <worker> <order>``; order events and worker
positions go on ``d:order:<order>``, which a node subscribes to while it has a
customer following that order. So a worker connected to node A gets an offer
made by node B, and a customer on B sees what happened on A.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.store import keys

log = logging.getLogger(__name__)


class WorkerLink(Protocol):
    """What the hub needs of a worker's socket."""

    def deliver(self, kind: str, order_id: str, frame: bytes) -> None: ...

    def replaced(self) -> None: ...


Watcher = Callable[[bytes], None]


class Hub:
    """Holds this node's worker links and order watchers; runs the listener."""

    def __init__(self, redis: aioredis.Redis, node: str) -> None:
        self.node = node
        self.workers: dict[str, WorkerLink] = {}
        self.watchers: dict[str, set[Watcher]] = {}
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._ready = asyncio.Event()

    # ------------------------------------------------------------ workers

    def attach(self, worker_id: str, link: WorkerLink) -> None:
        """Route ``worker_id``'s frames to ``link``; an older link of the same worker is closed."""
        old = self.workers.get(worker_id)
        self.workers[worker_id] = link
        if old is not None and old is not link:
            old.replaced()

    def detach(self, worker_id: str, link: WorkerLink) -> bool:
        """Forget ``link``; False if a newer link of the worker has taken over."""
        if self.workers.get(worker_id) is link:
            del self.workers[worker_id]
            return True
        return False

    # ------------------------------------------------------------ order watchers

    async def watch(self, order_id: str, watcher: Watcher) -> None:
        """Deliver the order's live payloads to ``watcher`` from now on."""
        group = self.watchers.setdefault(order_id, set())
        group.add(watcher)
        if len(group) == 1:
            await self._pubsub.subscribe(keys.order_channel(order_id))

    async def unwatch(self, order_id: str, watcher: Watcher) -> None:
        group = self.watchers.get(order_id)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            del self.watchers[order_id]
            with contextlib.suppress(RedisError, ConnectionError):
                await self._pubsub.unsubscribe(keys.order_channel(order_id))

    # ------------------------------------------------------------ listener

    async def start(self) -> None:
        """Subscribe to this node's channel; frames flow once this returns."""
        await self._pubsub.subscribe(keys.node_channel(self.node))

    async def run(self, on_error: Callable[[Exception], Awaitable[None]] | None = None) -> None:
        """Deliver published frames until cancelled."""
        node_channel = keys.node_channel(self.node).encode()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, ConnectionError) as exc:
                log.warning("pub/sub listener: %s; retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None or message["type"] != "message":
                continue
            channel, data = message["channel"], message["data"]
            if channel == node_channel:
                self._to_worker(data)
            else:
                self._to_watchers(channel.decode().removeprefix("d:order:"), data)

    def _to_worker(self, data: bytes) -> None:
        header, _, frame = data.partition(b"\n")
        kind, worker_id, order_id = header.decode().split(" ", 2)
        link = self.workers.get(worker_id)
        if link is not None:
            link.deliver(kind, order_id, frame)

    def _to_watchers(self, order_id: str, data: bytes) -> None:
        for watcher in tuple(self.watchers.get(order_id, ())):
            watcher(data)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, ConnectionError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
