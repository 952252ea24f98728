"""Workers' earnings in Redis: tips, what a worker reads of its own, and the
payouts of a period.

The scripts that pay (``workflow.lua`` completing a job, ``cancel.lua`` for a
customer's fee, ``tip.lua``) write each entry in the same step as what it pays
for (``lua/lib/pay.lua``), to three places in the city's hash tag:

- the worker's ledger (:func:`server.store.keys.ledger`): its newest
  :data:`~server.store.scripts.LEDGER_KEEP` entries, as :class:`Earned` JSON;
- the worker's per-day counters (:func:`server.store.keys.performance`),
  ``e:<day>:<currency>:<reason>`` (and ``...:jobs``): what it reads of today
  and this week;
- the city's day book (:func:`server.store.keys.book`), one hash per day,
  ``<worker>:<currency>:<reason>``: what payouts sum, bounded by the fleet
  whatever the number of orders.

Ledgers and day books end :data:`~server.store.scripts.LEDGER_DAYS` after
their last entry; each entry is also a worker event ``earned`` on the city's
stream, for an accounting system's webhook.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import msgspec

from protocol.admin import Payout
from protocol.messages import Earned, EarningsPeriod, EarningsReport
from server.core import earnings
from server.core.earnings import DAY_MS
from server.core.errors import Refused
from server.store import keys, replies
from server.store.keys import OrderId, WorkerId
from server.store.layout import PerfKind
from server.store.records import decoded, pairs, text
from server.store.redis_store import Store

_entry = msgspec.json.Decoder(Earned)
SCAN_COUNT = 1000  # fields a payout's read takes from a day book per round trip


def _counted(fields: dict[str, str], first_day: int) -> list[tuple[str, str, int]]:
    """The worker's earnings counters (``e:<day>:<currency>:<reason>``) from
    ``first_day`` on, as (currency, reason, amount)."""
    found = []
    for field, value in fields.items():
        kind, day, currency, reason = [*field.split(":"), "", "", ""][:4]
        if kind == PerfKind.EARNED and day.isdigit() and int(day) >= first_day and value.isdigit():
            found.append((currency, reason, int(value)))
    return found


class EarningsStore:
    """Tips, a worker's earnings and the payouts of a period, through the node's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def tip(self, oid: OrderId, customer: str, amount: int) -> None:
        """Record the customer's tip of its completed order's worker (once)."""
        if not keys.city_of(oid):
            raise Refused("order_not_found")
        await self.store.step("tip", keys.order_keys(oid), [oid, customer, amount],
                              replies.Refusable)  # fmt: skip

    async def report(self, city: str, wid: WorkerId) -> EarningsReport:
        """What the worker earned today and this week (by the server's clock), and
        its newest ledger entries."""
        fields, entries = await self.store.call_many([
            ("HGETALL", keys.performance(city, wid)), ("LRANGE", keys.ledger(city, wid), 0, -1),
        ])  # fmt: skip
        counters = decoded(pairs(cast(list[object], fields or [])))
        today = earnings.day_of(self.store.now_ms())
        week = earnings.week_of(today)
        return EarningsReport(
            today=EarningsPeriod(today * DAY_MS, earnings.totals(_counted(counters, today))),
            week=EarningsPeriod(week * DAY_MS, earnings.totals(_counted(counters, week))),
            recent=[_entry.decode(cast(bytes, e)) for e in cast(list[object], entries or [])],
        )

    async def payouts(self, city: str, first_day: int, last_day: int) -> list[Payout]:
        """What each worker of ``city`` earned over the days ``first_day`` to
        ``last_day`` (both included), by worker and currency."""
        sums: dict[str, list[tuple[str, str, int]]] = {}
        for day in range(first_day, last_day + 1):
            async for field, value in self._scan(keys.book(city, day)):
                worker, _, rest = field.partition(":")
                currency, _, reason = rest.partition(":")
                if value.lstrip("-").isdigit():
                    sums.setdefault(worker, []).append((currency, reason, int(value)))
        return [Payout(worker_id=worker, earnings=total)
                for worker in sorted(sums) for total in earnings.totals(sums[worker])]  # fmt: skip

    async def _scan(self, key: str) -> AsyncIterator[tuple[str, str]]:
        """A hash's fields and values, a few at a time (a city's day book may be
        large: HGETALL would hold Redis up)."""
        cursor: object = 0
        while True:
            cursor, flat = cast(
                tuple[object, list[object]],
                await self.store.call("HSCAN", key, cursor, "COUNT", SCAN_COUNT),
            )
            for i in range(0, len(flat), 2):
                yield text(flat[i]), text(flat[i + 1])
            if text(cursor) == "0":
                return
