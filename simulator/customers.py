"""Simulated customers: Poisson order arrivals over HTTP, live following, cancelling.

Orders arrive as a Poisson process at the scenario's rate (this process's
share of it). Each order picks a customer, a skill by the scenario's order
weights and a pickup by district weight; a skill with ``dropoff_km`` also
gets a drop-off. A share of the orders is followed live over
``/v1/orders/{id}/live`` (measuring ``assign_to_notified_ms``: the
``assigned`` event's time to its arrival here), and a share is cancelled
after a random delay (a ``409 not_cancellable`` is counted as
``cancels_refused``, not as an error: the order had got too far).

An order of a scenario skill with a ``category`` names that category with
attributes drawn from the scenario; when its worker reaches a step that is
the customer's (an approval), the customer approves it (or rejects the
scenario's share) after ``approve_delay_s``. A completed order is rated by
``rate_share`` of its customers (the stars its worker's behaviour earns),
and the worker of an order of a category tipped by ``tip_share`` of them.

Every order is a short task; the cancel timer goes through the shared
scheduler. Imports ``protocol`` (never ``server``) and ``simulator`` modules.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from protocol import codec
from protocol.messages import CreateOrder, EventHappened, OfferMode, Point, Snapshot
from protocol.messages import Error as LiveError
from simulator.fleet import World, dropoff_node, rng_for, span
from simulator.orders import OrderRecord
from simulator.tokens import customer_token

log = logging.getLogger(__name__)

_REFRESH_CONCURRENCY = 32


def arrivals(rate_per_s: float, duration_s: float, rng: random.Random) -> Iterator[float]:
    """Offsets in seconds of a Poisson process with this rate, up to ``duration_s``."""
    if rate_per_s <= 0:
        return
    t = rng.expovariate(rate_per_s)
    while t < duration_s:
        yield t
        t += rng.expovariate(rate_per_s)


class Customers:
    """The customers of one process and the orders they place."""

    def __init__(self, world: World, proc: int, http: httpx.AsyncClient, rate_per_s: float) -> None:
        self.world = world
        self.proc = proc
        self.http = http
        self.rate_per_s = rate_per_s
        ttl = world.config.duration_s + world.config.grace_s + 3600
        count = world.config.orders.customers
        secret = world.config.secret
        self.tokens = [
            customer_token(secret, f"{world.city_name}-c{k:04d}", ttl) for k in range(count)
        ]
        self.tasks: set[asyncio.Task[None]] = set()
        self.run_id = os.urandom(4).hex()  # keeps idempotency keys unique across runs
        skills = sorted(world.config.skills.items())
        self._skills = [name for name, _ in skills]
        self._skill_weights = [s.order_weight for _, s in skills]
        self._decisions = 0
        world.decide = self.decide
        world.completed = self.completed
        self._afterwards = 0

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task that the end of the run can cancel."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def place_orders(self) -> None:
        """Create orders at Poisson times until the scenario's duration has passed."""
        config = self.world.config
        rng = rng_for(config.seed, self.proc, "arrivals", 0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, offset in enumerate(arrivals(self.rate_per_s, config.duration_s, rng)):
            await asyncio.sleep(max(0.0, start + offset - loop.time()))
            if self.world.stopping:
                return
            self.spawn(self._order(n))
        await asyncio.sleep(max(0.0, start + config.duration_s - loop.time()))

    def _order_body(self, rng: random.Random) -> CreateOrder:
        """A random order: skill by weight, pickup by district weight, maybe a drop-off."""
        world = self.world
        skill = rng.choices(self._skills, weights=self._skill_weights)[0]
        lat, lng = world.city.sample(rng)
        dropoff = None
        km = world.config.skills[skill].dropoff_km
        if km is not None:
            node = dropoff_node(world.grid, world.grid.node(lat, lng), km, rng)
            dlat, dlng = world.grid.latlng(
                node[0] * world.grid.block_m, node[1] * world.grid.block_m
            )
            dropoff = Point(lat=dlat, lng=dlng)
        mode = OfferMode.BROADCAST if rng.random() < world.config.orders.broadcast_share else None
        service = world.config.skills[skill]
        if service.category is None:
            return CreateOrder(city=world.city_name, skill=skill, pickup=Point(lat=lat, lng=lng),
                               dropoff=dropoff, mode=mode)  # fmt: skip
        attrs = dict(rng.choice(service.attributes)) if service.attributes else {}
        return CreateOrder(city=world.city_name, category=service.category, attributes=attrs,
                           pickup=Point(lat=lat, lng=lng), dropoff=dropoff, mode=mode)  # fmt: skip

    async def _order(self, n: int) -> None:
        """Create order ``n``; then maybe schedule its cancel and follow it live."""
        world, orders = self.world, self.world.config.orders
        rng = rng_for(world.config.seed, self.proc, "order", n)
        customer = rng.randrange(len(self.tokens))
        body = self._order_body(rng)
        headers = self._auth(customer) | {"Idempotency-Key": f"{self.run_id}-{self.proc}-{n}"}
        posted_ms = time.time() * 1000.0
        response = await self._request("POST", "/v1/orders", headers, codec.encode(body), node=n)
        if response is None or response.status_code != 201:
            world.metrics.count("orders_create_failed")
            return
        view = codec.order_view_decoder.decode(response.content)
        if world.journal is not None:
            world.journal.order(view.id)
        world.metrics.count("orders_created")
        world.metrics.count(f"orders_category_{view.category or '-'}")
        record = world.book.created(view, customer, posted_ms)
        if rng.random() < orders.cancel_share:
            delay = span(rng, orders.cancel_delay_s)
            world.scheduler.call_later(delay, lambda: self.spawn(self._cancel(record)))
        if rng.random() < orders.follow_share:
            await self._follow(record, n)

    def decide(self, order_id: str, step: str) -> None:
        """The worker waits for the customer's approval of ``step``: the customer
        decides after a while (approves, or rejects the scenario's share)."""
        record = self.world.book.orders.get(order_id)
        if record is None:
            return
        orders = self.world.config.orders
        rng = rng_for(self.world.config.seed, self.proc, "decide", self._decisions)
        self._decisions += 1
        decision = "approve" if rng.random() < orders.approve_share else "reject"
        delay = span(rng, orders.approve_delay_s)
        self.world.scheduler.call_later(
            delay, lambda: self.spawn(self._decide(record, step, decision))
        )

    def completed(self, order_id: str, stars: int) -> None:
        """The order was completed: its customer may rate it and tip its worker."""
        record = self.world.book.orders.get(order_id)
        if record is None:
            return
        orders = self.world.config.orders
        rng = rng_for(self.world.config.seed, self.proc, "afterwards", self._afterwards)
        self._afterwards += 1
        if rng.random() < orders.rate_share:
            self.spawn(self._after(record, "rating", {"stars": stars}))
        if record.category is not None and rng.random() < orders.tip_share:
            self.spawn(self._after(record, "tip", {"amount": round(span(rng, orders.tip))}))

    async def _after(self, record: OrderRecord, what: str, body: dict[str, int]) -> None:
        """Rate the order, or tip its worker (``what``); counted when the server took it."""
        path = f"/v1/orders/{record.order_id}/{what}"
        response = await self._request(
            "POST",
            path,
            self._auth(record.customer),
            codec.encode(body),
            expect=(200,),
            node=record.customer,
        )
        if response is not None:
            self.world.metrics.count(f"{what}s_given")

    async def _decide(self, record: OrderRecord, step: str, decision: str) -> None:
        self.world.metrics.count(f"approvals_{decision}d")
        path = f"/v1/orders/{record.order_id}/steps/{step}"
        body = codec.encode({"decision": decision})
        await self._request("POST", path, self._auth(record.customer), body, expect=(200,),
                            node=record.customer)  # fmt: skip

    async def _cancel(self, record: OrderRecord) -> None:
        self.world.metrics.count("cancels_requested")
        path = f"/v1/orders/{record.order_id}/cancel"
        response = await self._request(
            "POST", path, self._auth(record.customer), expect=(200, 409), node=record.customer
        )
        if response is None:
            return
        if response.status_code == 409:
            self.world.metrics.count("cancels_refused")
        else:
            self.world.book.update(record.order_id, "cancelled")

    async def _follow(self, record: OrderRecord, n: int) -> None:
        """Follow the order live until the server closes the socket (the order ended).
        The journal gets the event ids seen and whether the socket stayed up to the end."""
        m, book = self.world.metrics, self.world.book
        bases = self.world.ws_bases
        url = f"{bases[n % len(bases)]}/v1/orders/{record.order_id}/live"
        headers = self._auth(record.customer)
        m.count("live_follows")
        seen: list[str] = []
        close: int | None = None
        try:
            async with connect(
                url, additional_headers=headers, compression=None, ping_interval=None, proxy=None
            ) as ws:
                async for raw in ws:
                    msg = codec.live_decoder.decode(raw)
                    if isinstance(msg, EventHappened):
                        event = msg.event
                        seen.append(event.id)
                        if event.type == "assigned":
                            m.record("assign_to_notified_ms", time.time() * 1000.0 - event.at)
                            book.assigned(record.order_id, event.at, exact=True)
                        book.update(record.order_id, event.state)
                    elif isinstance(msg, Snapshot):
                        seen.extend(e.id for e in msg.order.events)
                        book.apply_view(msg.order)
                    elif isinstance(msg, LiveError):
                        m.error(msg.code)
                    else:
                        m.count("live_positions")
            close = ws.close_code
        except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
            log.debug("live %s: %r", record.order_id, exc)
            m.error("live_failed")
        finally:
            if self.world.journal is not None:
                self.world.journal.follow(record.order_id, seen, close, close == 1000)

    async def refresh(self, records: Iterable[OrderRecord]) -> None:
        """Look up orders with ``GET /v1/orders/{id}`` and take their state and event times."""
        gate = asyncio.Semaphore(_REFRESH_CONCURRENCY)

        async def one(record: OrderRecord) -> None:
            async with gate:
                path = f"/v1/orders/{record.order_id}"
                response = await self._request("GET", path, self._auth(record.customer),
                                               node=record.customer)  # fmt: skip
            if response is not None:
                self.world.book.apply_view(codec.order_view_decoder.decode(response.content))

        await asyncio.gather(*(one(r) for r in list(records)))

    def _auth(self, customer: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[customer]}"}

    async def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None = None,
        expect: tuple[int, ...] = (200, 201),
        node: int = 0,
    ) -> httpx.Response | None:
        """One request to server node ``node`` (modulo their number), or the next ones if
        it cannot be reached; an unexpected answer is counted by its error code and gives
        ``None``."""
        if body is not None:
            headers = headers | {"Content-Type": "application/json"}
        bases = self.world.http_bases
        for attempt in range(len(bases)):
            url = bases[(node + attempt) % len(bases)] + path
            try:
                response = await self.http.request(method, url, headers=headers, content=body)
                break
            except httpx.TransportError as exc:
                log.debug("%s %s: %r", method, url, exc)
        else:
            self.world.metrics.error("http_failed")
            return None
        if response.status_code in expect:
            return response
        try:
            code = codec.http_error_decoder.decode(response.content).code
        except ValueError:
            code = f"http_{response.status_code}"
        self.world.metrics.error(code)
        return None
