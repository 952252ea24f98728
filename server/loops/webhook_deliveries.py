"""Webhook delivery: every node reads the cities' event streams in one
consumer group and sends each event to the subscriptions that want it.

Theory of operation
-------------------
Every order and worker event is appended to its city's stream in the script
that makes it (``prelude.lua``). Each node reads new entries with
``XREADGROUP`` as a consumer named after itself, so an entry goes to one
node; for each subscription that wants it (by event type and category,
created before the event, enabled) it sends one signed POST, and it
acknowledges the entry (``XACK``) once every such delivery has succeeded or
been kept for a retry. A node that dies leaves its unacknowledged entries
pending: another node's ``XAUTOCLAIM`` takes them after ``claim_idle_ms``
and sends them again.

Delivery is therefore **at least once**: a receiver may get a message twice
(the node died after sending, before acknowledging) and must use
``webhook-id`` to drop the second. Order between messages is not kept.

A failed attempt (a timeout, a connection error, any status but 2xx and 410,
or any other failure to send, such as a URL the HTTP client refuses) is a
failure of that subscription alone: the entry is still acknowledged, so the
other subscriptions never get it again, and the failed message is kept in
the city's retry set with its next time from
:func:`server.core.webhook_rules.next_delay_ms`; every node claims due retries
with a lease, as sweepers claim order timers. After the last attempt the
message is a dead letter. A receiver that answers **410 Gone** disables its
subscription. Every attempt is written to the subscription's delivery log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from protocol.messages import OrderEvent
from protocol.webhooks import DeadLetter, Delivery, OrderHappened, Subscription, WorkerHappened
from server.core import webhook_rules
from server.process.logs import Outage
from server.store.engine import StoreUnavailable
from server.store.redis_store import Store
from server.store.webhooks import Entry, Waiting, WebhookStore

log = logging.getLogger(__name__)

READ_COUNT = 100
CLAIM_EVERY = 20
OUTAGE_PAUSE_MAX_S = 2.0  # rounds between looks for entries a dead node left pending
_event = msgspec.json.Decoder(OrderEvent)
_worker = msgspec.json.Decoder(dict[str, str | int | None])
_encode = msgspec.json.Encoder().encode


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 24 random bytes, base64."""
    return webhook_rules.SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def body_of(entry: Entry) -> tuple[str, int, bytes] | None:
    """An entry's webhook type, time (ms) and body; None for one that does not decode."""
    try:
        if entry.kind == "order":
            event = _event.decode(entry.event)
            data: msgspec.Struct = OrderHappened(
                order_id=entry.order, city=entry.city, event=event, category=entry.category or None
            )
            etype, at = f"order.{event.type}", event.at
        else:
            raw = _worker.decode(entry.event)
            at = int(raw.get("at") or 0)
            etype = f"worker.{raw.get('type')}"
            data = WorkerHappened(
                worker_id=str(raw.get("worker")), city=entry.city, type=str(raw.get("type")),
                at=at, state=_text(raw.get("state")), node=_text(raw.get("node")),
                reason=_text(raw.get("reason")), by=_text(raw.get("by")),
                actor=_text(raw.get("actor")), customer=_text(raw.get("customer")),
                order_id=_text(raw.get("order_id")),
                until=int(until) if (until := raw.get("until")) else None,
                amount=int(amount) if (amount := raw.get("amount")) is not None else None,
                currency=_text(raw.get("currency")),
            )  # fmt: skip
    except (msgspec.DecodeError, ValueError):
        return None
    return etype, at, _encode({"type": etype, "timestamp": _stamp(at), "data": data})


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class Deliveries:
    """This node's part of webhook delivery (one per node, under the supervisor)."""

    def __init__(
        self, store: Store, node: str, cities: Sequence[str], *, timeout_s: float,
        retry_scale: float, concurrency: int, poll_ms: int, retention_ms: int,
        lease_ms: int,
    ) -> None:  # fmt: skip
        self.store = store
        self.hooks = WebhookStore(store, retention_ms)
        self.node = node
        self.cities = list(cities)
        self.timeout_s = timeout_s
        self.retry_scale = retry_scale
        self.poll_s = poll_ms / 1000
        self.lease_ms = max(lease_ms, int(timeout_s * 2000))
        self.claim_idle_ms = max(30_000, int(timeout_s * 3000))
        self.subs: list[Subscription] = []
        self.seq = -1
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._busy: set[asyncio.Task[None]] = set()
        self.max_busy = concurrency * 4
        self.sent = self.failed = 0
        self._faulty: set[str] = set()  # subscriptions whose unexpected failure was logged
        self.http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Deliver until cancelled; a store outage is logged once and waited out."""
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=20)
        outage = Outage("webhooks")
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as self.http:
            joined, pause = False, self.poll_s
            for round_ in range(1 << 62):
                try:
                    if not joined:
                        await self.hooks.join(self.cities)
                        joined = True
                    await self._round(round_)
                    outage.recovered()
                    pause = self.poll_s
                except StoreUnavailable as exc:
                    outage.failed(exc)
                    # back off: during a failover these calls would crowd the link
                    # that the node's heartbeat needs
                    pause = min(OUTAGE_PAUSE_MAX_S, pause * 2)
                await asyncio.sleep(pause)

    async def _round(self, round_: int) -> None:
        entries: list[Entry] = []
        skipped = False
        if not any(s.enabled for s in self.subs):
            # With no subscription enabled, the events need no reading: note where the
            # streams end *before* looking for new subscriptions, so that an event after
            # a subscription made meanwhile is never skipped.
            ends = await self.hooks.last_ids(self.cities)
            await self._refresh()
            if not any(s.enabled for s in self.subs):
                await self.hooks.skip_to(self.cities, ends)
                skipped = True
        if len(self._busy) >= self.max_busy:
            return
        if not skipped:
            entries = await self.hooks.read(self.cities, self.node, READ_COUNT)
            # Look for new subscriptions *after* reading: a subscription made before
            # an event that this read returned is then known when the event is matched.
            await self._refresh()
        if round_ % CLAIM_EVERY == 0:  # every city's claim goes out at once (one write)
            claims = await asyncio.gather(
                *(self.hooks.claim_stale(c, self.node, self.claim_idle_ms) for c in self.cities)
            )
            entries += [entry for claim in claims for entry in claim]
        for entry in entries:
            self._spawn(self._entry(entry))
        due = await asyncio.gather(
            *(self.hooks.due(c, self.lease_ms, READ_COUNT) for c in self.cities)
        )
        for city, msgs in zip(self.cities, due, strict=True):
            for msg in msgs:
                self._spawn(self._retry(city, msg))

    async def _refresh(self) -> None:
        """The subscriptions, read again when their set changed since the last look."""
        if await self.hooks.seq() != self.seq:
            self.seq, self.subs = await self.hooks.all()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._busy.add(task)
        task.add_done_callback(self._busy.discard)

    async def drain(self) -> None:
        """Wait for the deliveries in flight (at shutdown, within its deadline)."""
        if self._busy:
            await asyncio.gather(*self._busy, return_exceptions=True)

    # ------------------------------------------------------------ one entry

    def wanted_by(self, etype: str, at: int, category: str | None) -> list[Subscription]:
        return [s for s in self.subs if s.enabled and s.created_at <= at
                and webhook_rules.matches(s.events, s.categories, etype, category)]  # fmt: skip

    async def _entry(self, entry: Entry) -> None:
        try:
            found = body_of(entry)
            if found is not None:
                etype, at, body = found
                subs = self.wanted_by(etype, at, entry.category or None)
                msgs = [Waiting(f"msg_{entry.id}_{s.id}", s.id, etype, body, 0) for s in subs]
                await asyncio.gather(*(self._attempt(entry.city, m) for m in msgs))
            await self.hooks.ack(entry.city, entry.id)
        except StoreUnavailable as exc:  # left pending: claimed again later
            log.warning("webhooks: entry %s of %s left for later: %s", entry.id, entry.city, exc)

    async def _retry(self, city: str, msg: Waiting) -> None:
        with contextlib.suppress(StoreUnavailable):  # the lease runs out; claimed again
            await self._attempt(city, msg)

    # ------------------------------------------------------------ one attempt

    async def _attempt(self, city: str, msg: Waiting) -> None:
        """Send ``msg`` once more; then log it, and keep it for its next attempt,
        bury it, or (delivered, or the subscription gone) forget it."""
        sub = next((s for s in self.subs if s.id == msg.sub), None)
        attempts = msg.attempts + 1
        now = self.store.now_ms()
        if sub is None or not sub.enabled:
            reason = "subscription deleted" if sub is None else "subscription disabled"
            if sub is not None:
                await self._bury(sub.id, msg, attempts - 1, reason)
            await self.hooks.forget(city, msg.id)
            return
        status, error = await self._post(sub, msg)
        if status is not None and 200 <= status < 300:
            self.sent += 1
            await self.hooks.log(sub.id, Delivery(msg.id, msg.type, "delivered", attempts, now,
                                                  response_status=status))  # fmt: skip
            await self.hooks.forget(city, msg.id)
            return
        self.failed += 1
        if status == 410:
            log.warning("webhooks: %s answered 410 Gone: subscription %s disabled", sub.url, sub.id)
            await self.hooks.set_enabled(sub.id, False, "the receiver answered 410 Gone")
            await self._bury(sub.id, msg, attempts, error)
            await self.hooks.forget(city, msg.id)
            return
        delay = webhook_rules.next_delay_ms(attempts, self.retry_scale)
        if delay is None:
            await self._bury(sub.id, msg, attempts, error)
            await self.hooks.forget(city, msg.id)
            return
        rest = sum(webhook_rules.RETRY_DELAYS_S[attempts - 1 :]) * 1000 * self.retry_scale
        await self.hooks.wait(city, msg._replace(attempts=attempts), now + delay,
                              int(rest) + 3_600_000)  # fmt: skip
        await self.hooks.log(sub.id, Delivery(msg.id, msg.type, "retrying", attempts, now,
                                              response_status=status, error=error,
                                              next_attempt_at=now + delay))  # fmt: skip

    async def _bury(self, sub_id: str, msg: Waiting, attempts: int, error: str | None) -> None:
        now = self.store.now_ms()
        await self.hooks.bury(sub_id, DeadLetter(msg.id, msg.type, attempts, now,
                                                 msg.body.decode(), error))  # fmt: skip
        await self.hooks.log(sub_id, Delivery(msg.id, msg.type, "dead", attempts, now,
                                              error=error))  # fmt: skip

    async def _post(self, sub: Subscription, msg: Waiting) -> tuple[int | None, str | None]:
        """One signed POST: the status (None when there was no answer) and why it failed."""
        assert self.http is not None
        stamp = self.store.now_ms() // 1000
        headers = {
            "content-type": "application/json",
            "webhook-id": msg.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhook_rules.signature_header(
                sub.secret, msg.id, stamp, msg.body
            ),
        }
        async with self._slots:
            try:
                answer = await self.http.post(sub.url, content=msg.body, headers=headers)
            except httpx.TimeoutException:
                return None, f"no answer within {self.timeout_s:g} s"
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {exc}"[:300]
            except Exception as exc:  # whatever it is, it is this subscription's failure alone
                self._unexpected(sub, exc)
                return None, f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= answer.status_code < 300:
            return answer.status_code, None
        return answer.status_code, f"HTTP {answer.status_code}"

    def _unexpected(self, sub: Subscription, exc: Exception) -> None:
        """Log, with its traceback, the first failure of a kind no HTTP client error
        covers (``httpx.InvalidURL`` for a URL stored before URLs were checked)
        for a subscription; the delivery log records every attempt."""
        if sub.id not in self._faulty:
            self._faulty.add(sub.id)
            log.error("webhooks: delivery to subscription %s failed unexpectedly; "
                      "retried on its own schedule", sub.id, exc_info=exc)  # fmt: skip

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "in_flight": len(self._busy)}
