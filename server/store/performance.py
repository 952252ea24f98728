"""Workers' performance counters in Redis, and the customers' ratings that
feed them.

One hash per worker and city (:func:`server.store.keys.performance`), one
field per day and figure, so that a rolling window is a sum over its days.
The scripts count (``lua/lib/tally.lua``), in the same step as what they
count: ``o:<day>:n`` offers received (offer.lua), ``a:<day>:n`` accepted and
``a:<day>:ms`` the milliseconds those answers took since the offer was sent
(accept.lua), ``j:<day>:n`` and ``j:<day>:ms`` the same of rejections
(reject.lua), ``x:<day>:n`` offers that expired unanswered (``lua/lib/expire_offer.lua``:
``expire_offer``), ``t:<day>:n`` arrivals timed against the category's
promise and ``t:<day>:ok`` those on time (workflow.lua), ``h:<day>:<order>``
1 for a job the worker handed back (reassign.lua; 0 once an operator waived
it: waive.lua), ``r:<day>:n``
ratings received and ``r:<day>:s`` their stars (rate_order.lua). A day is
86,400,000 ms of Redis time. ``last`` is when the worker last completed a job
(workflow.lua). The first count of a day deletes the days older
than :data:`~server.store.scripts.PERF_DAYS`, and the hash expires that long after its last count,
so it stays bounded and ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from protocol.messages import PerformanceWindow
from server.core.earnings import DAY_MS
from server.core.errors import Refused
from server.core.ranking import Standing
from server.store import keys, replies
from server.store.keys import OrderId, WorkerId
from server.store.layout import PerfField, PerfFigure, PerfKind
from server.store.records import decoded, pairs
from server.store.redis_store import Store
from server.store.scripts import PERF_DAYS

WINDOWS = (7, PERF_DAYS)
KNOWN_STANDINGS = 100_000  # the most workers' standings a node keeps
K, N = PerfKind, PerfFigure.COUNT


def _summer(sums: dict[str, int]) -> Callable[..., int]:
    """A window's sum of one kind's figure (its count unless told)."""

    def sum_of(kind: str, figure: str = N) -> int:
        return sums.get(f"{kind}:{figure}", 0)

    return sum_of


def _ratio(part: int, whole: int, min_samples: int, digits: int = 3) -> float | None:
    """part / whole, once whole reaches the minimum number of samples."""
    return round(part / whole, digits) if whole and whole >= min_samples else None


def windows(fields: dict[str, str], today: int, min_samples: int) -> list[PerformanceWindow]:
    """The figures of each of :data:`WINDOWS` from a worker's counters (its hash's
    fields) as of day ``today``. Pure."""
    counts = []  # (days ago, figure, count) of each day's field
    for field, value in fields.items():
        kind, _, rest = field.partition(":")
        day, _, figure = rest.partition(":")
        if day.isdigit() and value.lstrip("-").isdigit():
            figure = f"{kind}:{N if kind == K.HANDED_BACK else figure}"  # h: one per order
            counts.append((today - int(day), figure, int(value)))
    found = []
    for days in WINDOWS:
        sums: dict[str, int] = {}
        for ago, figure, count in counts:
            if ago < days:
                sums[figure] = sums.get(figure, 0) + count
        sum_of = _summer(sums)
        offers, accepted, rejected = sum_of(K.OFFERED), sum_of(K.ACCEPTED), sum_of(K.REJECTED)
        answered, ratings, expired = accepted + rejected, sum_of(K.RATED), sum_of(K.EXPIRED)
        ms = sum_of(K.ACCEPTED, PerfFigure.MS) + sum_of(K.REJECTED, PerfFigure.MS)
        response = _ratio(ms, answered, min_samples, 0)
        found.append(PerformanceWindow(
            days=days, offers=offers, accepted=accepted, rejected=rejected,
            expired=expired, acceptance=_ratio(accepted, answered + expired, min_samples),
            response_ms=None if response is None else int(response),
            ratings=ratings,
            rating=_ratio(sum_of(K.RATED, PerfFigure.STARS), ratings, min_samples, 2),
            arrivals=sum_of(K.ARRIVED),
            on_time=_ratio(sum_of(K.ARRIVED, PerfFigure.ON_TIME), sum_of(K.ARRIVED), min_samples),
            cancelled=sum_of(K.HANDED_BACK),
            cancellation=_ratio(sum_of(K.HANDED_BACK), accepted, min_samples),
        ))  # fmt: skip
    return found


def standing(fields: dict[str, str], today: int, min_samples: int) -> Standing:
    """What ranking weighs of a worker's counters: its 30-day figures, when it
    last completed a job, and whether it is still a newcomer (fewer answered or
    expired offers than ``min_samples``). Pure."""
    month = windows(fields, today, min_samples)[-1]
    last = fields.get(PerfField.LAST_JOB, "")
    return Standing(
        rating=month.rating, acceptance=month.acceptance, cancellation=month.cancellation,
        last_job_at=int(last) if last.isdigit() else None,
        newcomer=month.accepted + month.rejected + month.expired < min_samples,
    )  # fmt: skip


class PerformanceStore:
    """Ratings and performance counters through the node's store, and the
    workers' standings as ranking weighs them (cached: a ranking may use
    figures up to ``cache_ms`` old, and a dispatch then costs no read for
    workers seen lately)."""

    def __init__(self, store: Store, cache_ms: int = 60_000) -> None:
        self.store = store
        self.cache_ms = cache_ms
        self._standings: dict[str, tuple[int, Standing]] = {}  # city/worker -> (until, standing)

    async def standings(
        self, city: str, wids: Sequence[str], min_samples: int
    ) -> dict[str, Standing]:
        """Each worker's standing: from the cache while fresh, the rest read in one
        round trip."""
        now = self.store.now_ms()
        found: dict[str, Standing] = {}
        missing = []
        for wid in wids:
            hit = self._standings.get(f"{city}/{wid}")
            if hit is not None and hit[0] > now:
                found[wid] = hit[1]
            else:
                missing.append(wid)
        if not missing:
            return found
        raw = await self.store.call_many([("HGETALL", keys.performance(city, w)) for w in missing])
        if len(self._standings) + len(missing) > KNOWN_STANDINGS:
            self._standings.clear()  # forgotten whole when full: a miss costs one read
        for wid, fields in zip(missing, raw, strict=True):
            found[wid] = standing(decoded(pairs(cast(list[object], fields or []))),
                                  now // DAY_MS, min_samples)  # fmt: skip
            self._standings[f"{city}/{wid}"] = (now + self.cache_ms, found[wid])
        return found

    async def rate(self, oid: OrderId, customer: str, stars: int, comment: str) -> None:
        """Record the customer's rating of its completed order (once)."""
        if not keys.city_of(oid):
            raise Refused("order_not_found")
        await self.store.step(
            "rate_order", keys.order_keys(oid), [oid, customer, stars, comment],
            replies.Refusable,
        )  # fmt: skip

    async def waive(self, city: str, wid: WorkerId, oid: str, actor: str, reason: str) -> None:
        """An operator waives the worker's hand-back of ``oid``: it counts no more."""
        await self.store.step(
            "waive", [keys.performance(city, wid), keys.worker(city, wid), *keys.city_keys(city)],
            [wid, oid, actor, reason], replies.Refusable,
        )  # fmt: skip

    async def figures(
        self, city: str, wid: WorkerId, min_samples: int
    ) -> tuple[list[PerformanceWindow], int | None]:
        """The worker's figures in each of :data:`WINDOWS` (days), by Redis time,
        and when it last completed a job (None: not in the days kept)."""
        fields = await self.store.hash_of(keys.performance(city, wid))
        last = fields.get(PerfField.LAST_JOB, "")
        found = windows(fields, self.store.now_ms() // DAY_MS, min_samples)
        return found, int(last) if last.isdigit() else None
