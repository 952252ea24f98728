"""Nodes are mortal: heartbeats, and taking over the workers of a dead node.

Every ``heartbeat_ms`` each node records itself in the node registry
(``d:nodes``, node -> last heartbeat in Redis time) and learns which nodes
are alive (beat within ``node_ttl_ms``) and which are dead. The dispatcher
offers orders only to workers on live nodes. A dead node is taken over by
one surviving node (a short lock decides which): in every city, the workers
still routed to it are disconnected, the offers they held are withdrawn and
their orders are due again at once; their jobs stay theirs. Then the dead
node leaves the registry, so the registry holds only nodes alive or not yet
taken over.

A node that starts under the id of a dead one (a restart with a fixed
``node_id``) first takes over its own old routes: it holds none of those
sockets any more. A node that stops cleanly does the same on its way out.
The beat also re-reads Redis ``TIME``, keeping the node's estimate of it.

The beat goes over a link of its own (``beats``), so that a node whose main
link is crowded with calls retrying through a shard's failover still beats
on time and is not taken for dead.

Judging others needs a healthy judge: a node declares others dead only after
its own beats have gone through, each within ``node_ttl_ms`` of the one
before, for a whole ``node_ttl_ms`` (after a Redis
restart every node's last beat looks old, and the first one back must not
take the others over while they reconnect too). And a node that finds it was
taken over while alive (its beat finds it unregistered) tells ``on_lost``:
its sockets are no longer routed, so it closes them and the apps reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from server.process.logs import Outage
from server.store.engine import StoreUnavailable
from server.store.redis_store import Store

log = logging.getLogger(__name__)


class NodeWatch:
    """This node's heartbeat, its view of which nodes live, and takeovers."""

    def __init__(
        self, store: Store, node: str, cities: Iterable[str], heartbeat_ms: int, node_ttl_ms: int,
        on_lost: Callable[[], None] = lambda: None, beats: Store | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.beats = beats or store  # the heartbeat's own link, when given
        self.on_lost = on_lost
        self.healthy_since: float | None = None  # start of the current run of good beats
        self.registered = False
        self.node = node
        self.cities = tuple(cities)
        self.heartbeat_ms = heartbeat_ms
        self.node_ttl_ms = node_ttl_ms
        self.live: tuple[str, ...] = (node,)
        self.last_beat = 0.0  # monotonic time of the last heartbeat Redis took
        self.taken_over: dict[str, int] = {}  # dead node -> workers disconnected
        self.lost_count = 0  # times this node found itself taken over

    def live_nodes(self) -> tuple[str, ...]:
        return self.live

    @property
    def beating(self) -> bool:
        """Whether Redis took a heartbeat within the node TTL."""
        return time.monotonic() - self.last_beat < self.node_ttl_ms / 1000

    async def start(self) -> None:
        """Clear routes left under this node's id, then beat once."""
        await self.take_over(self.node)
        await self.beat()

    async def beat(self) -> None:
        """Record this node alive; take over the dead ones."""
        reply = await self.beats.heartbeat(self.node, self.node_ttl_ms)
        if self.beats is not self.store:
            await self.beats.sync_clock()
            self.store.adopt_clock(self.beats)
        else:
            await self.store.sync_clock()
        now = time.monotonic()
        if self.healthy_since is None or now - self.last_beat > self.node_ttl_ms / 1000:
            # This node's own beats were held up (a failover delays every node's
            # calls without failing them): the others' may have been too.
            self.healthy_since = now
        self.last_beat = now
        if reply.added and self.registered:
            self.lost_count += 1
            log.warning("this node was taken over as dead while alive; closing its worker "
                        "sockets so that they reconnect and are routed again")  # fmt: skip
            self.on_lost()
        self.registered = True
        self.live = tuple(sorted({*reply.live, self.node}))
        if now - self.healthy_since < self.node_ttl_ms / 1000:
            return  # not healthy long enough to judge others
        stale_before = reply.now - self.node_ttl_ms
        for dead in reply.dead:
            if dead != self.node and await self.store.claim_takeover(
                dead, self.node, self.node_ttl_ms * 10
            ):
                await self.take_over(dead, stale_before)

    async def take_over(self, dead: str, stale_before: int | None = None) -> None:
        """Disconnect ``dead``'s workers in every city, then drop it from the registry.
        With ``stale_before`` (a survivor judging another node), it stops as soon as
        the node has beaten again: restarted under its id, its new routes stay."""
        workers = offers = 0
        for city in self.cities:
            if stale_before is not None and not await self.store.node_is_stale(dead, stale_before):
                log.warning("node %s beat again while being taken over; leaving it", dead)
                break
            result = await self.store.takeover(city, dead)
            workers, offers = workers + result.workers, offers + result.offers
        await self.store.forget_node(dead, stale_before)
        if dead != self.node or workers:
            self.taken_over[dead] = workers
            log.warning("node %s is gone: disconnected %d of its workers, withdrew %d offers",
                        dead, workers, offers)  # fmt: skip

    async def run(self) -> None:
        """Beat until cancelled; a store outage is logged once and waited out."""
        outage = Outage("heartbeat")
        while True:
            await asyncio.sleep(self.heartbeat_ms / 1000)
            try:
                await self.beat()
                outage.recovered()
            except StoreUnavailable as exc:
                self.healthy_since = None
                outage.failed(exc)

    async def leave(self) -> None:
        """On a clean stop: release the routes still under this node, leave the registry."""
        await self.take_over(self.node)
