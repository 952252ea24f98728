"""Store tests on a hand-driven clock: the clock, and helpers that set a city up
(workers connected and located, orders created) through the real store."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping

import pytest

from protocol.messages import CreateOrder, OfferMode, Point
from server.core.errors import Refused
from server.process.settings import Settings
from server.services.dispatcher import Dispatcher
from server.services.node_catalogue import Catalogue
from server.store.keys import City, OrderId, WorkerId, new_order_id
from server.store.redis_store import Store
from server.store.results import Spot

T0 = 1_800_000_000_000  # ms
NODE = "node-x"


class Clock:
    """A hand-driven clock, pinned into every script the store runs (ms)."""

    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


def dispatcher(
    store: Store, city: str, catalogue: Catalogue | None = None, **kw: object
) -> Dispatcher:
    """A node's dispatcher on ``store``, serving ``city`` (with ``catalogue``'s categories)."""
    settings = Settings(offer_timeout_s=10, max_dispatch_s=60, retry_interval_s=5,
                        cities=(city,), **kw)  # type: ignore[arg-type]  # fmt: skip
    return Dispatcher(store, settings, lambda: (NODE,), catalogue=catalogue)


async def locate(store: Store, city: str, spots: Mapping[str, Spot], *, first: bool = True) -> None:
    """Reports of these workers, each a first position of its session unless told."""
    skills = dict.fromkeys(spots, ("delivery",))
    await store.locate({city: dict(spots)}, skills, {city: list(spots)} if first else {})


async def connect(
    store: Store, city: str, wid: str, skills: tuple[str, ...] = ("delivery",)
) -> None:
    await store.connect(city, WorkerId(wid), NODE, f"s-{wid}", skills, 1, 3_600_000)


async def add_workers(
    store: Store, city: str, *wids: str, skills: tuple[str, ...] = ("delivery",)
) -> None:
    spots = {}
    for i, wid in enumerate(wids):
        await connect(store, city, wid, skills)
        await store.set_status(city, WorkerId(wid), "go_available")
        spots[wid] = (13.40, 52.52 + 0.001 * (i + 1), T0)
    await locate(store, city, spots)


async def new_order(d: Dispatcher, city: str, mode: OfferMode = OfferMode.SEQUENTIAL) -> OrderId:
    oid = new_order_id(City(city))
    body = CreateOrder(city=city, skill="delivery", pickup=Point(lat=52.52, lng=13.40), mode=mode)
    assert await d.create_order(oid, "cust", body) is not None
    await d.drain()
    return oid


async def state_of(store: Store, oid: OrderId) -> str:
    return (await store.order_fields(oid))["state"]


async def worker_state(store: Store, city: str, wid: str) -> str:
    return (await store.worker_record(city, WorkerId(wid))).state


async def refusal(step: Awaitable[object]) -> str:
    """The code a refused step was refused with."""
    with pytest.raises(Refused) as refused:
        await step
    return refused.value.code
