"""Redis records as protocol types: order hashes and event lists to
:class:`OrderView`, :class:`OrderEvent` and :class:`Job`.

How an order is laid out in its hash (field names) is known here and in the
Lua scripts, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple, cast

import msgspec

from protocol.catalogue import Cancellation, Category, Earnings, Ranking, Step
from protocol.codec import order_event_decoder
from protocol.ids import event_order
from protocol.messages import (
    AttributeValue,
    CreateOrder,
    Job,
    OfferMode,
    OrderEvent,
    OrderState,
    OrderView,
    Point,
    Position,
    Quote,
    Slot,
)
from server.core import workflow
from server.core.order_states import WORKING

_encode = msgspec.json.Encoder().encode
_steps = msgspec.json.Decoder(list[Step])
_quote = msgspec.json.Decoder(Quote)
_attributes = msgspec.json.Decoder(dict[str, AttributeValue])
_cancellation = msgspec.json.Decoder(Cancellation)
_earnings = msgspec.json.Decoder(Earnings)
_ranking = msgspec.json.Decoder(Ranking)


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


def order_fields(
    oid: str, customer: str, body: CreateOrder, mode: OfferMode, skill: str
) -> dict[str, str]:
    """A new order's hash fields (the create script adds its state, times and
    retention); ``skill`` names the search index its workers are found in."""
    fields = {
        "id": oid, "city": body.city, "skill": skill, "customer": customer,
        "mode": mode.value, "plat": repr(body.pickup.lat), "plng": repr(body.pickup.lng),
        "note": body.note or "",
    }  # fmt: skip
    if body.dropoff:
        fields.update(dlat=repr(body.dropoff.lat), dlng=repr(body.dropoff.lng))
    if body.slot:
        fields.update(sls=str(body.slot.start), sle=str(body.slot.end))
    return fields


class Pinned(NamedTuple):
    """What an order of a category carries from its category, read from its hash."""

    category: str
    version: int
    attributes: dict[str, AttributeValue]
    quote: Quote
    steps: list[Step]


def category_fields(
    category: Category,
    values: Mapping[str, AttributeValue],
    quote: Quote,
    code: str | None,
    policy: Mapping[str, str],
    skip: Iterable[str],
) -> dict[str, str]:
    """The hash fields that pin an order to its category's version: the
    version, the checked attributes, the quote, the workflow with the steps
    its attributes skip and the first one, the cancellation rules and the
    dispatch policy in force (``policy``: radii, timeouts, size), and the code
    the customer hands over, if a step asks for one. What runs the order
    after creation reads these, never the catalogue."""
    d = category.definition
    first = workflow.first(d.steps, set(skip))
    fields = {
        "cat": d.key, "catv": str(category.version), "attrs": _encode(values).decode(),
        "quote": _encode(quote).decode(), "steps": _encode(d.steps).decode(),
        "cancel": _encode(d.cancellation).decode(), "earn": _encode(d.earnings).decode(),
        "skills": ",".join(d.skills[1:]),
        "wskip": ",".join(sorted(skip)), "wstep": first.name, **policy,
    }  # fmt: skip
    if (timer := workflow.timer_ms(first)) is not None:
        fields["wtms"] = str(timer)
    if code:
        fields["code"] = code
    return fields


def pinned(fields: Mapping[str, str]) -> Pinned | None:
    """The category an order pinned at creation, or None (an order by bare skill)."""
    if not fields.get("cat"):
        return None
    return Pinned(fields["cat"], int(fields["catv"]), _attributes.decode(fields["attrs"]),
                  _quote.decode(fields["quote"]), _steps.decode(fields["steps"]))  # fmt: skip


def _names(value: str | None) -> list[str]:
    return [n for n in (value or "").split(",") if n]


def steps_of(fields: Mapping[str, str]) -> tuple[Step, ...]:
    """The workflow an order runs: its category's, pinned, or the default one."""
    raw = fields.get("steps")
    return tuple(_steps.decode(raw)) if raw else workflow.DEFAULT_STEPS


def pending_of(fields: Mapping[str, str]) -> str | None:
    """The step a working order waits for; None when it is not working. An
    order by bare skill walks the default steps one state at a time, so its
    state names its pending step."""
    state = OrderState(fields["state"]) if fields.get("state") else None
    if state not in WORKING:
        return None
    if wstep := fields.get("wstep"):
        return wstep
    return workflow.DEFAULT_STEPS[workflow.PHASES.index(state)].name if state else None


def skipped_of(fields: Mapping[str, str]) -> list[str]:
    return _names(fields.get("wskip"))


def done_of(fields: Mapping[str, str]) -> list[str]:
    """The workflow steps an order has done, in order."""
    return _names(fields.get("wdone"))


def slot_of(fields: Mapping[str, str]) -> Slot | None:
    """A booked order's slot, or None."""
    if not fields.get("sls") or not fields.get("sle"):
        return None
    return Slot(start=int(fields["sls"]), end=int(fields["sle"]))


def first_step(fields: Mapping[str, str]) -> str:
    """The step an order's workflow starts (or starts over) at; '' for an order by
    bare skill, whose steps follow its state. Pinned, never changed."""
    if not fields.get("steps"):
        return ""
    return workflow.first(steps_of(fields), skipped_of(fields)).name


def cancellation_of(fields: Mapping[str, str]) -> Cancellation | None:
    """The cancellation rules an order's category pinned, if it has them."""
    raw = fields.get("cancel")
    return _cancellation.decode(raw) if raw else None


def earnings_of(fields: Mapping[str, str]) -> tuple[Earnings, Quote] | None:
    """The earnings rules an order's category pinned and its quote, or None (an
    order by bare skill, or one created before earnings were pinned: it pays
    nothing)."""
    if not fields.get("earn") or not fields.get("quote"):
        return None
    return _earnings.decode(fields["earn"]), _quote.decode(fields["quote"])


def ranking_of(raw: str) -> Ranking | None:
    """The ranking weights an order's category pinned (its 'rank' field), if any."""
    return _ranking.decode(raw) if raw else None


def view_from_fields(
    oid: str,
    fields: dict[str, str],
    events: list[OrderEvent],
    position: Position | None,
) -> OrderView:
    """An :class:`OrderView` from an order hash's fields."""
    pickup = point(fields["plat"], fields["plng"])
    assert pickup is not None
    pin = pinned(fields)
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
        category=pin.category if pin else None,
        category_version=pin.version if pin else None,
        attributes=pin.attributes if pin else None,
        quote=pin.quote if pin else None,
        code=fields.get("code") or None,
        step=pending_of(fields),
        steps=workflow.infos(pin.steps) if pin else None,
        rating=int(fields["rating"]) if fields.get("rating") else None,
        rating_comment=fields.get("rcomment") or None,
        tip=int(fields["tip"]) if fields.get("tip") else None,
        slot=slot_of(fields),
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
               dropoff=view.dropoff, note=view.note, category=view.category,
               attributes=view.attributes, quote=view.quote, steps=view.steps,
               step=view.step, slot=view.slot)  # fmt: skip
