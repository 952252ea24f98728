"""Redis records as protocol types: order hashes and event lists to
:class:`OrderView`, :class:`OrderEvent` and :class:`Job`.

How an order is laid out in its hash (field names) is known here and in the
Lua scripts, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from protocol.codec import order_event_decoder
from protocol.ids import event_order
from protocol.messages import (
    CreateOrder,
    Job,
    OfferMode,
    OrderEvent,
    OrderState,
    OrderView,
    Point,
    Position,
)


def text(value: object) -> str:
    """A reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def point(lat: object, lng: object) -> Point | None:
    """A point from two hash values, or None if either is missing."""
    if lat in (None, b"", "") or lng in (None, b"", ""):
        return None
    return Point(lat=float(text(lat)), lng=float(text(lng)))


def decoded(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash reply as text keys and values."""
    return {text(k): text(v) for k, v in raw.items()}


def pairs(flat: list[object]) -> dict[bytes | str, bytes | str]:
    """A flat [k1, v1, k2, v2, ...] reply as a dict."""
    return {cast(bytes, flat[i]): cast(bytes, flat[i + 1]) for i in range(0, len(flat), 2)}


def events(entries: Iterable[bytes | str], after: str | None = None) -> list[OrderEvent]:
    """Order events from their history list (JSON each), those after ``after`` only
    if given."""
    history = [order_event_decoder.decode(e) for e in entries]
    if after is None:
        return history
    since = event_order(after)
    return [e for e in history if event_order(e.id) > since]


def order_fields(oid: str, customer: str, body: CreateOrder, mode: OfferMode) -> dict[str, str]:
    """A new order's hash fields (the create script adds its state, times and retention)."""
    fields = {
        "id": oid, "city": body.city, "skill": body.skill, "customer": customer,
        "mode": mode.value, "plat": repr(body.pickup.lat), "plng": repr(body.pickup.lng),
        "note": body.note or "",
    }  # fmt: skip
    if body.dropoff:
        fields.update(dlat=repr(body.dropoff.lat), dlng=repr(body.dropoff.lng))
    return fields


def view_from_fields(
    oid: str,
    fields: dict[str, str],
    events: list[OrderEvent],
    position: Position | None,
) -> OrderView:
    """An :class:`OrderView` from an order hash's fields."""
    pickup = point(fields["plat"], fields["plng"])
    assert pickup is not None
    return OrderView(
        id=oid,
        city=fields["city"],
        skill=fields["skill"],
        mode=OfferMode(fields["mode"]),
        state=OrderState(fields["state"]),
        customer=fields["customer"],
        pickup=pickup,
        created_at=int(fields["created"]),
        dropoff=point(fields.get("dlat"), fields.get("dlng")),
        note=fields.get("note") or None,
        worker=fields.get("worker") or None,
        position=position,
        events=events,
    )


def position(worker: str, fields: Mapping[str, str]) -> Position | None:
    """Where a worker was last seen, from its hash fields, if it ever reported."""
    if not fields.get("lng") or not fields.get("lat"):
        return None
    return Position(
        worker=worker, lat=float(fields["lat"]), lng=float(fields["lng"]),
        at=int(fields.get("at") or 0), seen_at=int(fields.get("seen") or 0),
    )  # fmt: skip


def job(fields: dict[str, str]) -> Job:
    """The :class:`Job` a worker sees for an order hash."""
    view = view_from_fields(fields["id"], fields, [], None)
    return Job(order_id=view.id, state=view.state, skill=view.skill, pickup=view.pickup,
               dropoff=view.dropoff, note=view.note)  # fmt: skip
