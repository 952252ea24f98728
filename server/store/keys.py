"""Redis key and channel names, and the ids they are built from.

Every key that one script touches carries the city as its hash tag
(``d:{city}:...``) so the same scripts run on a Redis Cluster. Order ids
embed their city (``<city>.<random>``) and offer ids their order
(``<order>/<n>``), so any node can find the keys from an id alone.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType

OrderId = NewType("OrderId", str)
OfferId = NewType("OfferId", str)
WorkerId = NewType("WorkerId", str)
City = NewType("City", str)

CITY_PATTERN = re.compile(r"^[a-z0-9_-]{1,32}\Z")
ORDER_PATTERN = re.compile(r"^([a-z0-9_-]{1,32})\.([0-9a-z]{8,40})\Z")
OFFER_PATTERN = re.compile(r"^([a-z0-9_-]{1,32}\.[0-9a-z]{8,40})/([0-9]{1,9})\Z")

CITIES = "d:cities"


def new_order_id(city: City) -> OrderId:
    """A fresh, unguessable order id in ``city``."""
    return OrderId(f"{city}.{secrets.token_hex(10)}")


def city_of(order_id: str) -> City | None:
    """The city an order id belongs to, or ``None`` if it is not an order id."""
    match = ORDER_PATTERN.match(order_id)
    return City(match.group(1)) if match else None


def order_of(offer_id: str) -> OrderId | None:
    """The order an offer id belongs to, or ``None`` if it is not an offer id."""
    match = OFFER_PATTERN.match(offer_id)
    return OrderId(match.group(1)) if match else None


def offer_id(order_id: OrderId, attempt: int) -> OfferId:
    """The id of the ``attempt``-th offer of an order."""
    return OfferId(f"{order_id}/{attempt}")


def _tag(city: str) -> str:
    return f"d:{{{city}}}:"


def order(order_id: OrderId) -> str:
    return f"{_tag(city_of(order_id) or '')}o:{order_id}"


def tried(order_id: OrderId) -> str:
    return f"{order(order_id)}:tried"


def events(order_id: OrderId) -> str:
    return f"{order(order_id)}:ev"


def worker(city: str, worker_id: str) -> str:
    return f"{_tag(city)}w:{worker_id}"


def geo(city: str) -> str:
    return f"{_tag(city)}geo"


def seen(city: str) -> str:
    return f"{_tag(city)}seen"


def timers(city: str) -> str:
    return f"{_tag(city)}timers"


def idempotency(customer: str, key: str) -> str:
    return f"d:idem:{{{customer}}}:{key}"


def node_channel(node: str) -> str:
    return f"d:node:{node}"


def order_channel(order_id: str) -> str:
    return f"d:order:{order_id}"
