"""Workers' performance counters in Redis, and the customers' ratings that
feed them.

One hash per worker and city (:func:`server.store.keys.performance`), one
field per day and figure, so that a rolling window is a sum over its days:
``r:<day>:n`` ratings received that day, ``r:<day>:s`` their stars. The
script that writes deletes the days older than the longest window
(:data:`WINDOW_DAYS`) and sets the key to expire a window after its last
write, so the hash stays bounded and ends.
"""

from __future__ import annotations

from typing import NamedTuple

from server.store import keys, replies
from server.store.keys import OrderId, WorkerId
from server.store.redis_store import Refused, Store

WINDOW_DAYS = 30
WINDOWS = (7, 30)
DAY_MS = 86_400_000


class Rated(NamedTuple):
    """Ratings received within a window: how many, and their mean (None when
    fewer than the minimum number of samples)."""

    received: int
    mean: float | None


class PerformanceStore:
    """Ratings and performance counters through the node's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def rate(self, oid: OrderId, customer: str, stars: int, comment: str) -> None:
        """Record the customer's rating of its completed order (once)."""
        if not keys.city_of(oid):
            raise Refused("order_not_found")
        await self.store.step(
            "rate_order", keys.order_keys(oid), [oid, customer, stars, comment, WINDOW_DAYS],
            replies.Refusable,
        )  # fmt: skip

    async def ratings(self, city: str, wid: WorkerId, min_samples: int) -> dict[int, Rated]:
        """The worker's ratings in each of :data:`WINDOWS` (days), by Redis time."""
        fields = await self.store.hash_of(keys.performance(city, wid))
        today = self.store.now_ms() // DAY_MS
        found = {}
        for days in WINDOWS:
            n = s = 0
            for name, value in fields.items():
                kind, _, rest = name.partition(":")
                day, _, figure = rest.partition(":")
                if kind == "r" and day.isdigit() and today - int(day) < days:
                    n += int(value) if figure == "n" else 0
                    s += int(value) if figure == "s" else 0
            found[days] = Rated(n, round(s / n, 2) if n and n >= min_samples else None)
        return found
