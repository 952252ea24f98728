"""Dispatch: what happens to an order, from creation to its last step.

Theory of operation
-------------------
*Finding a candidate.* An order that needs a worker is "ticked": one script
(``tick.lua``) expires its open offer if the time is up, then runs GEOSEARCH
around the pickup up to the widest radius step and keeps the workers that are
``available``, seen within ``location_max_age_s``, have the order's skill and
were never offered this order. :func:`server.core.ranking.choose` picks the
best in the smallest radius step that holds any: one worker (sequential) or
the top K (broadcast).

*Offering.* ``offer.lua`` makes the offer only if the order's dispatch
version is the one the tick saw, so two nodes dispatching one order cannot
both offer it; each chosen worker must still be available. The offer frame is
published to the node holding the worker's socket. The order's timer (in the
city's ``timers`` sorted set) is set to the offer's expiry.

*Timers.* Offer expiries and search retries live only in Redis. Every node's
sweeper claims due orders with a lease (``claim_due.lua``) and ticks them, so
if a node dies, its orders are claimed again when their lease runs out.

*Races* all end inside one script, first come first served: accept vs
timeout, accept vs cancel, two accepts of a broadcast offer, reject of an
expired offer, accept of a foreign or stale offer id. See ``PROTOCOL.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from protocol.codec import encode
from protocol.messages import CreateOrder, OfferMade, OrderView
from server.core import policy, ranking
from server.core.order_states import PROGRESS_EVENTS
from server.core.worker_states import STATUS_EVENTS
from server.settings import Settings
from server.store import keys, records
from server.store.keys import OfferId, OrderId, WorkerId
from server.store.redis_store import Accepted, Refused, Store, StoreUnavailable, Tick

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def fingerprint(body: CreateOrder) -> str:
    """A digest of an order request, to tell a retry from a different order."""
    return hashlib.sha256(encode(body)).hexdigest()[:32]


class Dispatcher:
    """Applies the dispatch rules through the store. One per node."""

    def __init__(self, store: Store, settings: Settings, clock: Clock = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.timing = policy.Timing(
            offer_timeout_ms=int(settings.offer_timeout_s * 1000),
            retry_interval_ms=int(settings.retry_interval_s * 1000),
            max_dispatch_ms=int(settings.max_dispatch_s * 1000),
        )
        self.radius_steps_m = tuple(km * 1000 for km in settings.radius_steps_km)
        self._tasks: set[asyncio.Task[None]] = set()
        self.offers_made = 0

    def now(self) -> int:
        return int(self.clock() * 1000)

    def lease_until(self, now: int) -> int:
        return now + self.settings.lease_ms

    # ------------------------------------------------------------ orders

    async def create_order(
        self, oid: OrderId, customer: str, body: CreateOrder
    ) -> OrderView | None:
        """Create the order and start dispatching it; its view as created, or
        None if it existed already (an idempotent retry)."""
        now = self.now()
        mode = body.mode or self.settings.offer_mode
        fields = records.order_fields(oid, customer, body, mode, now)
        created = await self.store.create_order(oid, fields, now, self.lease_until(now))
        if created is not None:
            self.dispatch_soon(oid)
        return created

    async def cancel(self, oid: OrderId, customer: str) -> None:
        await self.store.cancel(oid, customer, self.now())

    async def view(self, oid: OrderId, customer: str, after: str | None = None) -> OrderView:
        view = await self.store.order_view(oid, after) if keys.city_of(oid) else None
        if view is None or view.customer != customer:
            raise Refused("order_not_found", "no such order")
        return view

    # ------------------------------------------------------------ dispatching

    def dispatch_soon(self, oid: OrderId) -> None:
        """Dispatch ``oid`` in the background (its timer is leased to this node)."""
        task = asyncio.get_running_loop().create_task(self.dispatch_logged(oid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def dispatch_logged(self, oid: OrderId) -> None:
        """:meth:`dispatch`, logging a failure: the order's lease runs out and
        a sweeper (this node's or another's) tries again."""
        try:
            await self.dispatch(oid)
        except StoreUnavailable as exc:
            log.warning("dispatch of %s failed, will be retried: %s", oid, exc)
        except Exception:
            log.exception("dispatch of %s failed, will be retried", oid)

    async def dispatch(self, oid: OrderId) -> None:
        """Tick the order, and offer it or schedule its next search."""
        for _ in range(3):  # again only if every chosen worker was taken meanwhile
            now = self.now()
            tick = await self.store.tick(
                oid, now, self.radius_steps_m, self.settings.search_count,
                now - int(self.settings.location_max_age_s * 1000), self.lease_until(now),
            )  # fmt: skip
            if tick.action != "search":
                return
            chosen = ranking.choose(
                tick.candidates,
                radius_steps_m=self.radius_steps_m,
                mode=tick.mode,
                broadcast_size=self.settings.broadcast_size,
            )
            if not chosen:
                retry_at = policy.next_search(tick.created_at, now, self.timing)
                await self.store.settle(oid, tick.dv, now, retry_at)
                return
            made, detail = await self._offer(oid, tick, chosen, now)
            if made or detail != ["nobody"]:
                return

    async def _offer(
        self, oid: OrderId, tick: Tick, chosen: list[ranking.Candidate], now: int
    ) -> tuple[bool, list[str]]:
        assert tick.pickup is not None
        offer = keys.offer_id(oid, int(tick.dv) + 1)
        expires = policy.offer_expiry(now, self.timing)
        frames = [
            (c.worker_id, encode(OfferMade(
                offer_id=offer, order_id=oid, skill=tick.skill, pickup=tick.pickup,
                distance_m=round(c.distance_m, 1), expires_at=expires, sent_at=now,
                mode=tick.mode, dropoff=tick.dropoff, note=tick.note,
            )))
            for c in chosen
        ]  # fmt: skip
        made, detail = await self.store.offer(oid, tick.dv, offer, expires, now, frames)
        if made:
            self.offers_made += 1
        return made, detail

    async def forget_stale(self) -> int:
        """Drop positions too old to make a worker a candidate, in every city."""
        before = self.now() - int(self.settings.location_max_age_s * 1000)
        return sum(
            [await self.store.forget_stale(city, before) for city in await self.store.cities()]
        )

    async def sweep(self, limit: int = 200) -> int:
        """Claim and tick every due order in every city; how many were due.

        The claims of all cities go out at once (they pipeline on the store's
        one connection), so a sweep costs one round trip however many cities."""
        now = self.now()
        lease = self.lease_until(now)
        cities = await self.store.cities()
        claims = await asyncio.gather(*(self.store.claim_due(c, now, lease, limit) for c in cities))
        due = [oid for claim in claims for oid in claim]
        await asyncio.gather(*(self.dispatch_logged(oid) for oid in due))
        return len(due)

    # ------------------------------------------------------------ worker actions

    async def accept(self, wid: WorkerId, city: str, offer: str) -> Accepted:
        oid = keys.order_of(offer)
        if oid is None:
            raise Refused("offer_not_found", "not an offer id")
        if keys.city_of(oid) != city:
            raise Refused("offer_not_found", "no such offer for this worker")
        return await self.store.accept(OfferId(offer), wid, city, self.now())

    async def reject(self, wid: WorkerId, city: str, offer: str, reason: str) -> str:
        oid = keys.order_of(offer)
        if oid is None or keys.city_of(oid) != city:
            raise Refused("offer_not_found", "no such offer for this worker")
        now = self.now()
        state, redispatch = await self.store.reject(
            OfferId(offer), wid, city, now, reason, self.lease_until(now)
        )
        if redispatch:
            self.dispatch_soon(oid)
        return state

    async def progress(self, wid: WorkerId, city: str, order_id: str, step: str) -> tuple[str, str]:
        oid = OrderId(order_id)
        if keys.city_of(oid) != city:
            raise Refused("job_not_found", "no such job for this worker")
        return await self.store.progress(oid, wid, city, PROGRESS_EVENTS[step], self.now())

    async def set_status(self, wid: WorkerId, city: str, status: str) -> str:
        return await self.store.set_status(city, wid, STATUS_EVENTS[status])

    async def drain(self) -> None:
        """Wait for the background dispatches this node started."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
