"""Dispatch: what happens to an order, from creation to its last step.

Theory of operation
-------------------
*One clock.* Every time that decides anything (an offer's expiry, a lease,
the order's deadline) is Redis ``TIME``, read inside the script that decides;
where no script runs ("last seen" of a location report, a token's expiry) it
is the node's estimate of Redis time, re-synced at every heartbeat. A node
hands times on (an offer's ``expires_at`` is computed from the tick's time)
but never reads its own wall clock for them.

*The search index.* ``free:<skill>`` geo sets per city hold exactly the
workers who could take an order now: connected, ``available``, with a known
position. Every script that changes a worker's state or connection keeps
them in step (``lua/lib/index_search.lua``), and location reports move
only workers already there (``GEOADD XX``), so busy, paused or departed
workers cost a search nothing.

*Finding a candidate.* An order that needs a worker is "ticked": one script
(``tick.lua``) expires its open offer if the time is up, then searches the
index for the order's skill around the pickup, one radius step at a time,
and keeps the workers seen within ``location_max_age_s``, on a live node and
never offered this order, from the first step that holds any.
:func:`server.core.ranking.choose` picks one (sequential) or the top K
(broadcast), weighing each one's distance with its standing (30-day figures
and idle time, read from its performance counters through a cache of a
minute) by the weights the order's category pinned. At the order's deadline
(``max_dispatch_s`` after creation) it ends ``unassigned`` instead, and no
offer is made to last past it.

*Offering.* ``offer.lua`` makes the offer only if the order's dispatch
version is the one the tick saw, so two nodes dispatching one order cannot
both offer it; each chosen worker must still be available and connected. The
offer frame is published to the node holding the worker's socket. The
order's timer (in the city's ``timers`` sorted set) is set to the expiry.

*Timers.* Offer expiries and search retries live only in Redis. Every node's
sweeper claims due orders with a lease (``claim_due.lua``) and ticks them, so
if a node dies, its orders are claimed again when their lease runs out. The
node watch (``server/loops/nodes.py``) notices a node that stopped beating
and takes its workers over: disconnected, their offers withdrawn and due at
once.

*Races* all end inside one script, first come first served: accept vs
timeout (an accept at or after ``expires_at`` is refused even before the
sweeper expires the offer), accept vs cancel, two accepts of a broadcast
offer, reject of an expired offer, accept of a foreign or stale offer id. See
``PROTOCOL.md`` §11.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Mapping

from protocol.codec import encode
from protocol.errors import message
from protocol.messages import CreateOrder, OfferMade, OfferMode, OrderView
from server.core import attributes, booking, policy, pricing, ranking, workflow
from server.core.errors import InvalidFields, Refused
from server.core.order_states import OrderState
from server.core.worker_states import STATUS_EVENTS
from server.core.workflow import Actor
from server.process.logs import about_order
from server.process.settings import Settings
from server.services import bookings
from server.services.figures import Figures
from server.services.node_catalogue import Catalogue
from server.services.workflows import StepDone, Workflows
from server.store import keys, records
from server.store.catalogue import CatalogueStore
from server.store.engine import StoreUnavailable
from server.store.keys import OfferId, OrderId, WorkerId
from server.store.performance import PerformanceStore
from server.store.redis_store import Store
from server.store.replies import OfferReply
from server.store.results import Accepted, Tick

log = logging.getLogger(__name__)

LiveNodes = Callable[[], Iterable[str]]


def fingerprint(body: CreateOrder) -> str:
    """A digest of an order request, to tell a retry from a different order."""
    return hashlib.sha256(encode(body)).hexdigest()[:32]


class Dispatcher:
    """Applies the dispatch rules through the store. One per node.

    ``live_nodes`` names the nodes whose workers may be offered orders (the
    node watch keeps it; a worker on a node that stopped beating is skipped)."""

    def __init__(
        self, store: Store, settings: Settings, live_nodes: LiveNodes,
        figures: Figures | None = None, catalogue: Catalogue | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.figures = figures or Figures()
        self.catalogue = catalogue or Catalogue(CatalogueStore(store))
        self.workflows = Workflows(store, self.figures)
        self.performance = PerformanceStore(store, int(settings.ranking_cache_s * 1000))
        self.bookings = bookings.Bookings(store, settings.lease_ms)
        self.settings = settings
        self.live_nodes = live_nodes
        self.cities = frozenset(settings.cities)
        self.timing = policy.Timing(
            offer_timeout_ms=int(settings.offer_timeout_s * 1000),
            retry_interval_ms=int(settings.retry_interval_s * 1000),
            max_dispatch_ms=int(settings.max_dispatch_s * 1000),
        )
        self.radius_steps_m = tuple(km * 1000 for km in settings.radius_steps_km)
        self.max_age_ms = int(settings.location_max_age_s * 1000)
        self.keep_ms = settings.retention_s * 1000
        self._tasks: set[asyncio.Task[None]] = set()
        self.offers_made = 0

    def served(self, city: str) -> None:
        """Raise ``unknown_city`` unless this deployment serves ``city``."""
        if city not in self.cities:
            raise Refused("unknown_city")

    # ------------------------------------------------------------ orders

    async def create_order(
        self, oid: OrderId, customer: str, body: CreateOrder
    ) -> OrderView | None:
        """Create the order and start dispatching it; its view as created, or
        None if it existed already (an idempotent retry)."""
        return await self.place(oid, self.order_fields(oid, customer, body))

    def order_fields(self, oid: OrderId, customer: str, body: CreateOrder) -> dict[str, str]:
        """A new order's hash fields, or the client error that refuses it; nothing
        is stored, so a refusal leaves no trace (an ``Idempotency-Key`` stays
        free). An order of a category has its attributes checked
        (``invalid_attributes`` names each bad one), its price quoted, and its
        category's version pinned."""
        self.served(body.city)
        if (body.skill is None) == (body.category is None):
            raise Refused("missing_field" if body.skill is None else "invalid_field",
                          "give either a category (with its attributes) or a skill")  # fmt: skip
        s = self.settings
        if body.category is None:
            if body.attributes:
                raise Refused("invalid_field", "attributes belong to a category")
            mode = body.mode or s.offer_mode
            fields = records.order_fields(oid, customer, body, mode, body.skill or "")
            lead, remind = s.booking_lead_s, s.booking_remind_s
        else:
            fields, (lead, remind) = self._category_order(oid, customer, body)
        if body.slot is not None:
            fields |= bookings.fields_of(body.slot, lead, remind, self.store.now_ms())
        return fields

    async def place(self, oid: OrderId, fields: dict[str, str]) -> OrderView | None:
        """Store an order made of :meth:`order_fields` and start dispatching it;
        its view as created, or None if it existed already."""
        with about_order(oid):
            created = await self.store.create_order(
                oid, fields, self.settings.lease_ms, self.keep_ms
            )
            if created is not None:
                self.figures.order(keys.city_of(oid) or "", "created")
                if created.state is not OrderState.CREATED:  # not booked for later
                    self.dispatch_soon(oid)
        return created

    def _category_order(
        self, oid: OrderId, customer: str, body: CreateOrder
    ) -> tuple[dict[str, str], tuple[float, float]]:
        """A category order's hash fields (checked attributes, quote and policy
        pinned), and its booking lead and reminder times (s) should it have a slot."""
        category = self.catalogue.lookup(body.category or "")
        d = category.definition
        values, errors = attributes.check_values(d.attributes, body.attributes)
        if errors:
            raise InvalidFields("invalid_attributes", message("invalid_attributes"), errors)
        quote = pricing.quote(d, values, body.pickup, body.dropoff)
        skip = workflow.skipped(d.steps, {a.name: a for a in d.attributes}, values)
        wants_code = any(f.type == "code" for step in d.steps for f in step.requires)
        code = f"{secrets.randbelow(10_000):04d}" if wants_code else None
        p, s = d.dispatch, self.settings
        policy = records.policy_fields(
            ",".join(f"{km * 1000:g}" for km in p.radius_steps_km or s.radius_steps_km),
            int((p.offer_timeout_s or s.offer_timeout_s) * 1000),
            int((p.max_dispatch_s or s.max_dispatch_s) * 1000),
            p.broadcast_size or s.broadcast_size,
            p.capacity_units or 1,
            None if p.arrive_within_s is None else int(p.arrive_within_s * 1000),
            None if p.ranking is None else encode(p.ranking).decode(),
        )
        mode = body.mode or p.mode or s.offer_mode
        fields = records.order_fields(oid, customer, body, mode, d.skills[0])
        lead = s.booking_lead_s if p.booking_lead_s is None else p.booking_lead_s
        remind = s.booking_remind_s if p.booking_remind_s is None else p.booking_remind_s
        pinned = fields | records.category_fields(category, values, quote, code, policy, skip)
        return pinned, (lead, remind)

    async def cancel(self, oid: OrderId, by: Actor, actor: str) -> None:
        """Cancel as the order's customer (by its category's rules) or an operator."""
        with about_order(oid):
            await self.workflows.cancel(oid, by, actor)
        self.figures.order(keys.city_of(oid) or "", "cancelled")

    async def view(self, oid: OrderId, customer: str, after: str | None = None) -> OrderView:
        view = await self.store.order_view(oid, after) if keys.city_of(oid) else None
        if view is None or view.customer != customer:
            raise Refused("order_not_found")
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
        with about_order(oid):
            try:
                await self.dispatch(oid)
            except StoreUnavailable as exc:
                log.warning("dispatch of %s failed, will be retried: %s", oid, exc)
            except Exception:
                log.exception("dispatch of %s failed, will be retried", oid)

    async def dispatch(self, oid: OrderId) -> None:
        """Tick the order, and offer it, schedule its next search, or give up."""
        for _ in range(3):  # again only if every chosen worker was taken meanwhile
            tick = await self.store.tick(
                oid, self.radius_steps_m, self.settings.search_count, self.max_age_ms,
                self.settings.lease_ms, self.live_nodes(),
            )  # fmt: skip
            if tick.action == "step":
                await self.workflows.timed_out(oid, tick.step)
                return
            if tick.action == "begin":
                if await self.bookings.begin(oid):
                    continue  # its worker was away: taken back, dispatch it now
                return
            if tick.action != "search":
                return
            if tick.urgent:  # the best few at once
                tick = tick._replace(mode=OfferMode.BROADCAST)
            timing, size = self._policy(tick)
            retry_at = policy.next_search(tick.created_at, tick.now, timing)
            choice = await self._choose(oid, tick, size)
            if retry_at is None or not choice.chosen:
                if retry_at is not None and choice.later_at is not None:
                    retry_at = min(retry_at, choice.later_at)  # when the held back may have it
                settled = await self.store.settle(oid, tick.dv, retry_at)
                if settled.state == OrderState.UNASSIGNED:
                    self.figures.order(keys.city_of(oid) or "", "unassigned")
                return
            made = await self._offer(oid, tick, choice.chosen)
            if made.made or made.reason != "nobody":
                return

    async def _choose(self, oid: OrderId, tick: Tick, size: int) -> ranking.Choice:
        """The candidates ranked with their standings (read through this node's
        cache), by the order's weights: whom to offer it to. A booked order's
        candidates are those whose schedule it fits; an urgent one goes to the
        best few at once (broadcast, no fair share, nobody held back)."""
        candidates = list(tick.candidates)
        city = keys.city_of(oid) or ""
        if tick.slot is not None and tick.pickup is not None and candidates:
            held = await self.store.schedules(city, [c.worker_id for c in candidates])
            candidates = [c for c in candidates
                          if booking.fits(tick.slot, tick.pickup, held[c.worker_id])]  # fmt: skip
        if not candidates:
            return ranking.Choice([])
        standing = await self.performance.standings(
            city, [c.worker_id for c in candidates], self.settings.min_samples
        )
        candidates = [c._replace(standing=standing[c.worker_id]) for c in candidates]
        rules = tick.ranking or ranking.DEFAULT
        if tick.urgent:
            rules = ranking.urgent(rules)
        return ranking.choose(
            candidates, mode=tick.mode, broadcast_size=size, rules=rules, now_ms=tick.now,
            since_ms=tick.created_at, luck=random.random(),
        )  # fmt: skip

    def _policy(self, tick: Tick) -> tuple[policy.Timing, int]:
        """The order's timings and broadcast size: its category's, pinned on
        it, or the settings' for an order by bare skill."""
        if tick.policy is None:
            return self.timing, self.settings.broadcast_size
        timing = self.timing._replace(offer_timeout_ms=tick.policy.offer_timeout_ms,
                                      max_dispatch_ms=tick.policy.max_dispatch_ms)  # fmt: skip
        return timing, tick.policy.broadcast_size

    async def _offer(self, oid: OrderId, tick: Tick, chosen: list[ranking.Candidate]) -> OfferReply:
        assert tick.pickup is not None
        offer = keys.offer_id(oid, int(tick.dv) + 1)
        expires = policy.offer_expiry(tick.now, tick.created_at, self._policy(tick)[0])
        pin = tick.pinned
        frames = [
            (c.worker_id, round(c.distance_m, 1), encode(OfferMade(
                offer_id=offer, order_id=oid, skill=tick.skill, pickup=tick.pickup,
                distance_m=round(c.distance_m, 1), expires_at=expires, sent_at=tick.now,
                mode=tick.mode, dropoff=tick.dropoff, note=tick.note,
                category=pin.category if pin else None, attributes=pin.attributes if pin else None,
                quote=pin.quote if pin else None,
                steps=workflow.infos(pin.steps) if pin else None, slot=tick.slot,
            )))
            for c in chosen
        ]  # fmt: skip
        made = await self.store.offer(oid, tick.dv, offer, expires, frames)
        if made.made:
            self.offers_made += 1
            if tick.dv == "0":
                self.figures.order_to_offer.observe((tick.now - tick.created_at) / 1000)
        return made

    async def forget_stale(self) -> int:
        """Take workers not seen lately out of the search index, in every city."""
        counts = [await self.store.forget_stale(city, self.max_age_ms) for city in self.cities]
        return sum(counts)

    async def sweep(self, limit: int = 200) -> int:
        """Claim and tick every due order in every city; how many were due.

        The claims of all cities go out at once (they pipeline on the store's
        one connection), so a sweep costs one round trip however many cities."""
        lease = self.settings.lease_ms
        claims = await asyncio.gather(*(self.store.claim_due(c, lease, limit) for c in self.cities))
        due = [oid for claim in claims for oid in claim]
        await asyncio.gather(*(self.dispatch_logged(oid) for oid in due))
        return len(due)

    # ------------------------------------------------------------ worker actions

    async def accept(self, wid: WorkerId, city: str, offer: str) -> Accepted:
        oid = keys.order_of(offer)
        if oid is None or keys.city_of(oid) != city:
            raise Refused("offer_not_found")
        accepted = await self.store.accept(OfferId(offer), wid, city)
        self.workflows.remember(accepted.order)
        self.figures.order(city, "assigned")
        self.figures.offers["accepted"] += 1
        self.figures.created_to_assigned.observe((accepted.now - accepted.created_at) / 1000)
        return accepted

    async def reject(self, wid: WorkerId, city: str, offer: str, reason: str) -> str:
        oid = keys.order_of(offer)
        if oid is None or keys.city_of(oid) != city:
            raise Refused("offer_not_found")
        state, redispatch = await self.store.reject(
            OfferId(offer), wid, city, reason, self.settings.lease_ms
        )
        self.figures.offers["rejected"] += 1
        if redispatch:
            self.dispatch_soon(oid)
        return state

    async def progress(
        self, wid: WorkerId, city: str, order_id: str, step: str,
        data: Mapping[str, object] | None = None,
    ) -> StepDone:  # fmt: skip
        """The worker did the pending step of its job."""
        oid = OrderId(order_id)
        if keys.city_of(oid) != city:
            raise Refused("job_not_found")
        with about_order(oid):
            return await self.workflows.perform(oid, "worker", wid, step, None, data)

    async def set_status(self, wid: WorkerId, city: str, status: str) -> str:
        return await self.store.set_status(city, wid, STATUS_EVENTS[status])

    async def drain(self) -> None:
        """Wait for the background dispatches this node started."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
