"""Workers' earnings against a real redis-server on a hand-driven clock: a job's
entries made once in the step that completes it, a cancellation fee's share,
tips, what a worker reads, and payouts that reconcile with the ledgers."""

from __future__ import annotations

import json
import uuid
from typing import cast

import msgspec
import pytest

from protocol.catalogue import Cancellation, CategoryDefinition, Earnings, Pricing, Step
from protocol.messages import CreateOrder, Point
from server.core.earnings import DAY_MS
from server.core.errors import Refused
from server.services.dispatcher import Dispatcher
from server.services.node_catalogue import Catalogue
from server.store import keys
from server.store.catalogue import CatalogueStore
from server.store.earnings import EarningsStore
from server.store.keys import City, OrderId, WorkerId, new_order_id
from server.store.redis_store import Store
from server.store.scripts import LEDGER_DAYS, LEDGER_KEEP
from tests.pinned import Clock, add_workers, dispatcher, locate, new_order, refusal, state_of
from tests.support import one_tag, scratch_city

MINUTE = 60_000
RULES = Earnings(share=0.8, per_km=40, per_minute=10, cancel_share=0.9)


def paid_category(key: str, rules: Earnings = RULES) -> CategoryDefinition:
    """2400 EUR cents an order; the worker arrives, then finishes; free to cancel
    until it arrived, 500 after."""
    return CategoryDefinition(
        key=key, name="Paid errand", skills=["delivery"],
        steps=[Step(name="arrive", state="arrived"), Step(name="finish")],
        pricing=Pricing(currency="EUR", base=2400),
        cancellation=Cancellation(free_until="arrive", fee=500), earnings=rules,
    )  # fmt: skip


async def paid_city(store: Store, rules: Earnings = RULES) -> tuple[str, Dispatcher, str]:
    """A city with workers "a" (about 111 m from every pickup) and "b", and a
    dispatcher that knows a paid category; the category's key."""
    city, key = scratch_city(), f"paid-{uuid.uuid4().hex[:8]}"
    catalogue = Catalogue(CatalogueStore(store))
    await catalogue.apply(paid_category(key, rules), "test")
    await add_workers(store, city, "a", "b")
    return city, dispatcher(store, city, catalogue), key


async def paid_order(d: Dispatcher, city: str, key: str, customer: str = "cust") -> OrderId:
    oid = new_order_id(City(city))
    body = CreateOrder(city=city, category=key, pickup=Point(lat=52.52, lng=13.40))
    assert await d.create_order(oid, customer, body) is not None
    await d.drain()
    return oid


async def finished(
    d: Dispatcher, clock: Clock, city: str, key: str, wid: str = "a",
    arrive_ms: int = 10 * MINUTE, finish_ms: int = 22 * MINUTE + 30_000,
) -> OrderId:  # fmt: skip
    """An order accepted by ``wid``, arrived 10 minutes and finished 32.5 minutes
    later (unless told)."""
    await locate(d.store, city, {wid: (13.40, 52.521, clock.ms)}, first=False)
    oid = await paid_order(d, city, key)
    await d.accept(WorkerId(wid), city, f"{oid}/1")
    clock.ms += arrive_ms
    await d.progress(WorkerId(wid), city, oid, "arrive")
    clock.ms += finish_ms
    await d.progress(WorkerId(wid), city, oid, "finish")
    return oid


def time_paid(entries: list[dict[str, object]]) -> int:
    """The time part among a ledger's entries (0 when it has none)."""
    return sum(cast(int, e["amount"]) for e in entries if e["reason"] == "time")


class Ahead(Store):
    """A node whose estimate of the server's clock runs 5 ms ahead of it (a real
    node's is off by about a round trip)."""

    def now_ms(self) -> int:
        return super().now_ms() + 5


async def ledger(store: Store, city: str, wid: str) -> list[dict[str, object]]:
    raw = cast(list[bytes], await store.call("LRANGE", keys.ledger(city, wid), 0, -1))
    return [json.loads(e) for e in raw]


async def earned_events(store: Store, city: str) -> list[dict[str, object]]:
    entries = cast(list[tuple[bytes, list[object]]],
                   await store.call("XRANGE", keys.stream(city), "-", "+"))  # fmt: skip
    found = []
    for _, flat in entries:
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        event = json.loads(cast(bytes, fields[b"e"]))
        if event["type"] == "earned":
            found.append(event)
    return found


async def test_a_completed_job_pays_share_distance_and_time_once(
    store: Store, clock: Clock
) -> None:
    """The step that completes the job writes its three entries, its day's sums and
    an ``earned`` event each; the step sent again is refused and pays nothing."""
    city, d, key = await paid_city(store)
    oid = await finished(d, clock, city, key)
    assert await state_of(store, oid) == "completed"
    entries = await ledger(store, city, "a")
    # 111.2 m x 40 per km = 4.45 -> 4; 32.5 min x 10 = 325; 0.8 x 2400 = 1920
    assert [(e["reason"], e["amount"]) for e in entries] == [
        ("time", 325), ("distance", 4), ("share", 1920)]  # fmt: skip
    assert {e["order_id"] for e in entries} == {oid} and {e["at"] for e in entries} == {clock.ms}
    with pytest.raises(Refused):
        await d.progress(WorkerId("a"), city, oid, "finish")
    assert len(await ledger(store, city, "a")) == 3
    book = await store.hash_of(keys.book(city, clock.ms // DAY_MS))
    assert book == {"a:EUR:jobs": "1", "a:EUR:share": "1920", "a:EUR:distance": "4",
                    "a:EUR:time": "325"}  # fmt: skip
    events = await earned_events(store, city)
    assert sorted((e["reason"], e["amount"], e["currency"]) for e in events) == [
        ("distance", 4, "EUR"), ("share", 1920, "EUR"), ("time", 325, "EUR")]  # fmt: skip
    assert {e["worker"] for e in events} == {"a"}
    report = await EarningsStore(store).report(city, WorkerId("a"))
    assert report.today.since == clock.ms // DAY_MS * DAY_MS
    (today,) = report.today.totals
    assert (today.jobs, today.share, today.distance, today.time, today.total) == (
        1, 1920, 4, 325, 2249)  # fmt: skip
    assert report.week.totals == report.today.totals
    assert [e.reason for e in report.recent] == ["time", "distance", "share"]


async def test_the_time_part_rounds_half_up_in_the_store(store: Store, clock: Clock) -> None:
    """15 s at 10 a minute is 2.5: 3."""
    city, d, key = await paid_city(store)
    await finished(d, clock, city, key, arrive_ms=0, finish_ms=15_000)
    assert time_paid(await ledger(store, city, "a")) == 3


async def test_the_time_part_is_what_the_history_gives(redis_url: str) -> None:
    """The time part runs from the assigned event's at to the completed event's, to
    the unit (one a ms here), on a node whose estimate of the clock is off."""
    store = Ahead(one_tag(redis_url))
    try:
        city, d, key = await paid_city(store, Earnings(share=0, per_minute=MINUTE))
        now = Clock()
        now.ms = store.now_ms()
        oid = await finished(d, now, city, key, arrive_ms=0, finish_ms=0)
        view = await store.order_view(oid)
        assert view is not None
        at = {e.state.value: e.at for e in view.events}
        assert time_paid(await ledger(store, city, "a")) == at["completed"] - at["assigned"], at
    finally:
        await store.link.aclose()


async def test_a_category_change_pays_new_orders_only(store: Store, clock: Clock) -> None:
    """The rules are pinned at creation, like the price."""
    city, d, key = await paid_city(store)
    await locate(store, city, {"a": (13.40, 52.521, clock.ms)}, first=False)
    oid = await paid_order(d, city, key)
    meaner = msgspec.structs.replace(paid_category(key), earnings=Earnings(share=0.1))
    await d.catalogue.apply(meaner, "test")
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await d.progress(WorkerId("a"), city, oid, "arrive")
    await d.progress(WorkerId("a"), city, oid, "finish")
    assert ("share", 1920) in [(e["reason"], e["amount"]) for e in await ledger(store, city, "a")]


async def test_a_paid_cancel_pays_the_worker_its_share_of_the_fee(
    store: Store, clock: Clock
) -> None:
    """After the free point the customer pays 500; the worker earns 0.9 of it, once.
    A free cancel, or an operator's, pays nothing."""
    city, d, key = await paid_city(store)
    oid = await paid_order(d, city, key)
    await d.accept(WorkerId("a"), city, f"{oid}/1")
    await d.progress(WorkerId("a"), city, oid, "arrive")
    await d.cancel(oid, "customer", "cust")
    assert [(e["reason"], e["amount"]) for e in await ledger(store, city, "a")] == [
        ("cancel_fee", 450)]  # fmt: skip
    free = await paid_order(d, city, key)
    await d.accept(WorkerId("a"), city, f"{free}/1")
    await d.cancel(free, "customer", "cust")
    by_operator = await paid_order(d, city, key)
    await d.accept(WorkerId("a"), city, f"{by_operator}/1")
    await d.progress(WorkerId("a"), city, by_operator, "arrive")
    await d.cancel(by_operator, "operator", "ops")
    assert len(await ledger(store, city, "a")) == 1
    (total,) = (await EarningsStore(store).report(city, WorkerId("a"))).today.totals
    assert (total.jobs, total.cancel_fee, total.total) == (0, 450, 450)


async def test_a_tip_is_given_once_to_the_worker_of_a_completed_order(
    store: Store, clock: Clock
) -> None:
    """A tip goes whole to the worker, with a ``tipped`` event; a second one, one on
    an open order or an order without a price, or another customer's, is refused."""
    city, d, key = await paid_city(store)
    earnings = EarningsStore(store)
    oid = await finished(d, clock, city, key)
    assert await refusal(earnings.tip(oid, "someone-else", 100)) == "order_not_found"
    await earnings.tip(oid, "cust", 200)
    assert await refusal(earnings.tip(oid, "cust", 300)) == "already_tipped"
    entries = await ledger(store, city, "a")
    assert (entries[0]["reason"], entries[0]["amount"]) == ("tip", 200)
    view = await store.order_view(oid)
    assert view is not None and view.tip == 200
    assert (view.events[-1].type, view.events[-1].data) == ("tipped", {"amount": 200})
    open_order = await paid_order(d, city, key)
    assert await refusal(earnings.tip(open_order, "cust", 100)) == "not_tippable"
    await locate(store, city, {"b": (13.40, 52.522, clock.ms)}, first=False)
    bare = await new_order(d, city)  # by bare skill, no price: offered to "b" ("a" holds one)
    await d.accept(WorkerId("b"), city, f"{bare}/1")
    for step in ("arrived", "started", "completed"):
        await d.progress(WorkerId("b"), city, bare, step)
    assert await refusal(earnings.tip(bare, "cust", 100)) == "not_tippable"
    assert await ledger(store, city, "b") == []


async def test_payouts_reconcile_with_the_ledgers(store: Store, clock: Clock) -> None:
    """Over a period of days, each worker's payout is the sum of its ledger entries
    made in those days, reason by reason; days outside the period are left out."""
    city, d, key = await paid_city(store)
    earnings = EarningsStore(store)
    first_day = clock.ms // DAY_MS
    for day in range(4):
        for wid in ("a", "b")[: 1 + day % 2]:
            oid = await finished(d, clock, city, key, wid)
            await earnings.tip(oid, "cust", 10 * (day + 1))
        clock.ms = (first_day + day + 1) * DAY_MS + 3_600_000  # the next day, 01:00
    period = (first_day + 1, first_day + 2)
    found = {p.worker_id: p.earnings for p in await earnings.payouts(city, *period)}
    for wid in ("a", "b"):
        entries = [e for e in await ledger(store, city, wid)
                   if period[0] <= cast(int, e["at"]) // DAY_MS <= period[1]]  # fmt: skip
        sums: dict[str, int] = {}
        for e in entries:
            sums[cast(str, e["reason"])] = sums.get(cast(str, e["reason"]), 0) + cast(
                int, e["amount"]
            )
        total = found[wid]
        assert (total.share, total.distance, total.time, total.tip) == (
            sums.get("share", 0),
            sums.get("distance", 0),
            sums.get("time", 0),
            sums.get("tip", 0),
        )
        assert total.total == sum(sums.values()) > 0
        assert total.jobs == len({e["order_id"] for e in entries if e["reason"] == "share"})
    assert (found["a"].jobs, found["b"].jobs) == (2, 1)
    everything = await earnings.payouts(city, first_day, first_day + 3)
    assert sum(p.earnings.jobs for p in everything) == 6


async def test_ledgers_and_books_are_bounded_and_end(store: Store, clock: Clock) -> None:
    """A ledger keeps its newest entries only; ledger and day book expire the kept
    days after their last entry."""
    city, d, key = await paid_city(store)
    first_day, jobs = clock.ms // DAY_MS, LEDGER_KEEP // 3 + 2  # three entries a job
    for _ in range(jobs):
        last = await finished(d, clock, city, key)
    assert await store.call("LLEN", keys.ledger(city, "a")) == LEDGER_KEEP
    assert (await ledger(store, city, "a"))[0]["order_id"] == last
    (payout,) = await EarningsStore(store).payouts(city, first_day, clock.ms // DAY_MS)
    assert payout.earnings.jobs == jobs  # the day books count them all
    for key_ in (keys.ledger(city, "a"), keys.book(city, clock.ms // DAY_MS)):
        ttl = cast(int, await store.call("PTTL", key_))
        assert (LEDGER_DAYS - 1) * DAY_MS < ttl <= LEDGER_DAYS * DAY_MS
