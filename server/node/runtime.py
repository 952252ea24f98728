"""The node's runtime: its connections to Redis and everything that lives as long as them.

``Runtime.start`` connects (starting a private redis-server when no
``REDIS_URL`` is set), checks the Redis version, and starts the background
loops under a supervisor: the pub/sub listener, the location flusher, the
deadline sweeper, the node heartbeat, the catalogue's watch, and the private
Redis's own watch. Before it serves, it applies the configured category files.
``Runtime.stop`` undoes it in reverse, each step with a deadline. The app's
``lifespan`` owns one. ``problems`` says what keeps the node from being
ready (``/readyz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import Counter
from collections.abc import Callable

from protocol.tokens import Role
from server.loops.ingest import LocationIngest
from server.loops.nodes import NodeWatch
from server.loops.supervisor import Supervisor
from server.loops.sweeper import sweep_forever
from server.loops.webhook_deliveries import Deliveries
from server.node import exposition
from server.process import auth
from server.process.auth import Identity, TokenPolicy
from server.process.embedded_redis import EmbeddedRedis
from server.process.settings import Settings
from server.services.dispatcher import Dispatcher
from server.services.figures import Figures
from server.services.hub import Hub
from server.services.node_catalogue import Catalogue
from server.services.overrides import Overrides
from server.store.catalogue import CatalogueStore
from server.store.cluster import ClusterLink, open_link
from server.store.earnings import EarningsStore
from server.store.engine import StoreUnavailable
from server.store.redis_store import Store

log = logging.getLogger(__name__)

MIN_REDIS = (6, 2, 0)
SHARDED_PUBSUB = (7, 0, 0)  # SSUBSCRIBE/SPUBLISH, on a cluster only
START_TIMEOUT_S = 30.0


# Measured with `dispatch bench` at 10,000 connections (about 1.5 M tracked
# objects): with the default thresholds the collector took ~46% of the CPU and
# full collections paused the loop for up to 550 ms. Young collections every
# 50,000 allocations, and full ones rarely, cut CPU per report from 40 to 32 us
# and ingest lag p99 from 10 s to under 100 ms.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Move start-up objects out of the collector's sight and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Runtime:
    """One node's connections, components and loops."""

    def __init__(self, settings: Settings, on_fatal: Callable[[str], None]) -> None:
        self.settings = settings
        self.node = settings.node
        self.tokens: TokenPolicy = settings.tokens
        self.stats: Counter[str] = Counter()
        self.figures = Figures()
        self.failed: str | None = None
        self.draining = False
        self._on_fatal = on_fatal
        self._embedded: EmbeddedRedis | None = None
        self.beat_store: Store | None = None
        self.supervisor = Supervisor(self._fatal)

    def verify(self, token: str | None, role: Role) -> Identity:
        """The identity in a bearer token, checked against the one clock (Redis time)."""
        return auth.verify(self.tokens, token, role, self.store.now_ms() / 1000)

    def _fatal(self, reason: str) -> None:
        log.critical("node %s cannot go on: %s", self.node, reason)
        self.failed = reason
        self._on_fatal(reason)

    async def start(self) -> None:
        s = self.settings
        url = s.redis_url
        if not url:
            self._embedded = EmbeddedRedis(s.data_dir)
            url = self._embedded.start()  # main thread: see embedded_redis
            self.supervisor.start("embedded-redis", self._embedded.supervise)
        timeout_s = s.redis_timeout_ms / 1000
        self.store = Store(open_link(url, timeout_s, timeout_s),
                           stream_keep_ms=s.events_keep_s * 1000)  # fmt: skip
        self.store.link.on_round_trip = self.figures.redis_call.observe
        async with asyncio.timeout(START_TIMEOUT_S):
            version = await self._await_redis()
        if version < MIN_REDIS:
            raise StoreUnavailable(f"Redis {version} is too old: 6.2 or newer is needed")
        link = self.store.link
        cluster = isinstance(link, ClusterLink)
        shards = link if isinstance(link, ClusterLink) and version >= SHARDED_PUBSUB else None
        self.store.publish_sharded(shards is not None)
        self.hub = Hub(url, self.node, timeout_s, s.cities, sharded=shards)
        self.catalogue = Catalogue(CatalogueStore(self.store))
        self.hub.on_catalogue = self.catalogue.notified
        self.pubsub_mode = ("sharded (SSUBSCRIBE on each city's master)" if shards else
                            "classic (one connection)" if cluster else "classic")  # fmt: skip
        # The heartbeat has a link of its own: on a node whose main link is crowded
        # (calls retrying through a shard's failover), a beat queued behind them
        # would arrive late and the other nodes would take this one over as dead.
        self.beat_store = Store(open_link(url, timeout_s, timeout_s),
                                stream_keep_ms=s.events_keep_s * 1000)  # fmt: skip
        self.nodes = NodeWatch(self.store, self.node, s.cities, s.heartbeat_ms, s.node_ttl_ms,
                               on_lost=self.hub.restart_workers,
                               beats=self.beat_store)  # fmt: skip
        self.dispatcher = Dispatcher(
            self.store, s, self.nodes.live_nodes, self.figures, self.catalogue
        )
        self.overrides = Overrides(self.dispatcher)
        self.performance = self.dispatcher.performance
        self.earnings = EarningsStore(self.store)
        self.ingest = LocationIngest(self.store, s.location_flush_ms)
        self.deliveries = Deliveries(
            self.store, self.node, s.cities, timeout_s=s.webhook_timeout_s,
            retry_scale=s.webhook_retry_scale, concurrency=s.webhook_concurrency,
            poll_ms=s.webhook_poll_ms, retention_ms=s.retention_s * 1000, lease_ms=s.lease_ms,
        )  # fmt: skip
        self.supervisor.start("pubsub", self.hub.run)
        async with asyncio.timeout(START_TIMEOUT_S):
            await self.hub.start()
            await self.nodes.start()
            await self.catalogue.seed(s.categories, s.builtin_categories)
        self.supervisor.start("catalogue", self.catalogue.run)
        self.supervisor.start("webhooks", self.deliveries.run)
        self.supervisor.start("ingest", self.ingest.run)
        self.supervisor.start(
            "sweeper", lambda: sweep_forever(self.dispatcher, s.sweep_interval_ms)
        )
        self.supervisor.start("heartbeat", self.nodes.run)
        self.supervisor.start("loop-lag", self.figures.watch_loop_lag)
        if s.metrics_dir:
            directory = s.metrics_dir
            self.supervisor.start("metrics-file", lambda: exposition.write_forever(self, directory))
        tune_gc()
        log.info("node %s up (redis %s%s; pub/sub %s; cities %s)", self.node,
                 ".".join(map(str, version)), ", cluster" if cluster else "",
                 self.pubsub_mode, ",".join(s.cities))  # fmt: skip

    async def _await_redis(self) -> tuple[int, ...]:
        """The Redis version, once Redis answers (retrying while it starts up)."""
        while True:
            try:
                return await self.store.server_version()
            except StoreUnavailable as exc:
                log.warning("waiting for redis: %s", exc)
                await asyncio.sleep(0.5)

    def problems(self) -> list[str]:
        """Why this node is not ready now; empty when it is."""
        found = []
        if self.draining:
            found.append("shutting down")
        if self.failed:
            found.append(f"failed: {self.failed}")
        if not (self.nodes.beating and self.store.link.health.answering):
            found.append("redis does not answer in time")
        if not self.hub.subscriber.subscribed.is_set():
            found.append("pub/sub is not subscribed")
        return found + self.supervisor.problems()

    async def stop(self) -> None:
        """Stop the loops (the ingest's last flush included), release this node's
        routes, close the connections, stop the private Redis. Every step that
        waits on Redis has a deadline, so a hung Redis cannot hold up the exit."""
        self.draining = True
        timeout_s = self.settings.redis_timeout_ms / 1000 * 2
        await self.supervisor.stop(["heartbeat", "sweeper", "ingest", "webhooks"])
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            async with asyncio.timeout(timeout_s):
                await self.dispatcher.drain()
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            async with asyncio.timeout(timeout_s):
                await self.deliveries.drain()
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            async with asyncio.timeout(timeout_s):
                await self.nodes.leave()
        await self.supervisor.stop()
        self.hub.close()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(timeout_s):
                await self.store.link.aclose()
                if self.beat_store is not None:
                    await self.beat_store.link.aclose()
        if self._embedded:
            await asyncio.to_thread(self._embedded.stop)

    def metrics(self) -> dict[str, object]:
        return {
            "node": self.node,
            "workers_connected": len(self.hub.workers),
            "orders_watched": len(self.hub.watchers),
            "offers_made": self.dispatcher.offers_made,
            "offers_delivered": self.figures.offers["sent"],
            "live_nodes": list(self.nodes.live),
            "taken_over_while_alive": self.nodes.lost_count,
            "redis_timeouts": self.store.link.timeouts,
            "redis_connects": self.store.link.connects,
            "pubsub": self.pubsub_mode,
            "pubsub_reconnects": self.hub.subscriber.reconnects,
            "pubsub_bad_messages": self.hub.bad_messages,
            "loop_restarts": dict(self.supervisor.restarts),
            **self.stats,
            "ingest": self.ingest.stats(),
            "webhooks": self.deliveries.stats(),
            "loop_lag_ms": self.figures.loop_lag_ms(),
        }
