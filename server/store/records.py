"""Redis records as protocol types: order hashes and event lists to
:class:`OrderView`, :class:`OrderEvent` and :class:`Job`.

How an order is laid out in its hash is :mod:`server.store.layout`'s
:class:`~server.store.layout.OrderField` (``F`` here), which the Lua scripts
are rendered with too; the fields a node writes at creation are made here.
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
from server.store.layout import OrderField as F

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
        F.ID: oid, F.CITY: body.city, F.SKILL: skill, F.CUSTOMER: customer, F.MODE: mode.value,
        F.PICKUP_LAT: repr(body.pickup.lat), F.PICKUP_LNG: repr(body.pickup.lng),
        F.NOTE: body.note or "",
    }  # fmt: skip
    if body.dropoff:
        fields[F.DROPOFF_LAT] = repr(body.dropoff.lat)
        fields[F.DROPOFF_LNG] = repr(body.dropoff.lng)
    if body.slot:
        fields[F.SLOT_START] = str(body.slot.start)
        fields[F.SLOT_END] = str(body.slot.end)
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
        F.CATEGORY: d.key, F.CATEGORY_VERSION: str(category.version),
        F.ATTRIBUTES: _encode(values).decode(), F.QUOTE: _encode(quote).decode(),
        F.STEPS: _encode(d.steps).decode(),
        F.CANCELLATION: _encode(d.cancellation).decode(), F.EARNINGS: _encode(d.earnings).decode(),
        F.SKILLS: ",".join(d.skills[1:]),
        F.STEPS_SKIPPED: ",".join(sorted(skip)), F.STEP: first.name, **policy,
    }  # fmt: skip
    if (timer := workflow.timer_ms(first)) is not None:
        fields[F.STEP_TIMER_MS] = str(timer)
    if code:
        fields[F.CODE] = code
    return fields


def policy_fields(
    radii_m: str, offer_timeout_ms: int, max_dispatch_ms: int, broadcast_size: int, units: int,
    arrive_within_ms: int | None, ranking: str | None,
) -> dict[str, str]:  # fmt: skip
    """The hash fields of the dispatch policy a category pins on an order (its
    radius steps in m as a comma list, its ranking weights as JSON); the scripts
    read them instead of the settings."""
    fields = {
        F.RADII: radii_m, F.OFFER_TIMEOUT_MS: str(offer_timeout_ms),
        F.MAX_DISPATCH_MS: str(max_dispatch_ms), F.BROADCAST_SIZE: str(broadcast_size),
        F.UNITS: str(units),
    }  # fmt: skip
    if arrive_within_ms is not None:
        fields[F.ARRIVE_WITHIN_MS] = str(arrive_within_ms)
    if ranking is not None:
        fields[F.RANKING] = ranking
    return fields


def booking_fields(dispatch_at: int, remind_ms: int) -> dict[str, str]:
    """The hash fields that book an order: when its dispatch begins (ms), and how
    long before its slot its job begins."""
    return {F.DISPATCH_AT: str(dispatch_at), F.REMIND_MS: str(remind_ms)}


def stepped(fields: Mapping[str, str], state: str, pending: str | None,
            done: Iterable[str] | None = None) -> dict[str, str]:  # fmt: skip
    """An order's fields as a workflow step leaves them: its state, the step it
    waits for ('' for none) and, if given, the steps done (what the node remembers
    of what the script wrote)."""
    after = {**fields, F.STATE: state, F.STEP: pending or ""}
    if done is not None:
        after[F.STEPS_DONE] = ",".join(done)
    return after


def booking_begun(fields: Mapping[str, str]) -> dict[str, str]:
    """An order's fields once its booked job began (the job its worker is reminded of)."""
    return {**fields, F.BOOKING_BEGUN: "1"}


def booking_waits(fields: Mapping[str, str]) -> bool:
    """Whether an order is a booked job accepted and due to begin, not begun yet."""
    return bool(fields.get(F.BOOKING_DUE)) and not fields.get(F.BOOKING_BEGUN)


def pinned(fields: Mapping[str, str]) -> Pinned | None:
    """The category an order pinned at creation, or None (an order by bare skill)."""
    if not fields.get(F.CATEGORY):
        return None
    return Pinned(fields[F.CATEGORY], int(fields[F.CATEGORY_VERSION]),
                  _attributes.decode(fields[F.ATTRIBUTES]), _quote.decode(fields[F.QUOTE]),
                  _steps.decode(fields[F.STEPS]))  # fmt: skip


def _names(value: str | None) -> list[str]:
    return [n for n in (value or "").split(",") if n]


def steps_of(fields: Mapping[str, str]) -> tuple[Step, ...]:
    """The workflow an order runs: its category's, pinned, or the default one."""
    raw = fields.get(F.STEPS)
    return tuple(_steps.decode(raw)) if raw else workflow.DEFAULT_STEPS


def pending_of(fields: Mapping[str, str]) -> str | None:
    """The step a working order waits for; None when it is not working. An
    order by bare skill walks the default steps one state at a time, so its
    state names its pending step."""
    state = OrderState(fields[F.STATE]) if fields.get(F.STATE) else None
    if state not in WORKING:
        return None
    if wstep := fields.get(F.STEP):
        return wstep
    return workflow.DEFAULT_STEPS[workflow.PHASES.index(state)].name if state else None


def skipped_of(fields: Mapping[str, str]) -> list[str]:
    return _names(fields.get(F.STEPS_SKIPPED))


def done_of(fields: Mapping[str, str]) -> list[str]:
    """The workflow steps an order has done, in order."""
    return _names(fields.get(F.STEPS_DONE))


def slot_of(fields: Mapping[str, str]) -> Slot | None:
    """A booked order's slot, or None."""
    if not fields.get(F.SLOT_START) or not fields.get(F.SLOT_END):
        return None
    return Slot(start=int(fields[F.SLOT_START]), end=int(fields[F.SLOT_END]))


def first_step(fields: Mapping[str, str]) -> str:
    """The step an order's workflow starts (or starts over) at; '' for an order by
    bare skill, whose steps follow its state. Pinned, never changed."""
    if not fields.get(F.STEPS):
        return ""
    return workflow.first(steps_of(fields), skipped_of(fields)).name


def cancellation_of(fields: Mapping[str, str]) -> Cancellation | None:
    """The cancellation rules an order's category pinned, if it has them."""
    raw = fields.get(F.CANCELLATION)
    return _cancellation.decode(raw) if raw else None


def earnings_of(fields: Mapping[str, str]) -> tuple[Earnings, Quote] | None:
    """The earnings rules an order's category pinned and its quote, or None (an
    order by bare skill, or one created before earnings were pinned: it pays
    nothing)."""
    if not fields.get(F.EARNINGS) or not fields.get(F.QUOTE):
        return None
    return _earnings.decode(fields[F.EARNINGS]), _quote.decode(fields[F.QUOTE])


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
    pickup = point(fields[F.PICKUP_LAT], fields[F.PICKUP_LNG])
    assert pickup is not None
    pin = pinned(fields)
    return OrderView(
        id=oid,
        city=fields[F.CITY],
        skill=fields[F.SKILL],
        mode=OfferMode(fields[F.MODE]),
        state=OrderState(fields[F.STATE]),
        customer=fields[F.CUSTOMER],
        pickup=pickup,
        created_at=int(fields[F.CREATED]),
        dropoff=point(fields.get(F.DROPOFF_LAT), fields.get(F.DROPOFF_LNG)),
        note=fields.get(F.NOTE) or None,
        worker=fields.get(F.WORKER) or None,
        position=position,
        events=events,
        category=pin.category if pin else None,
        category_version=pin.version if pin else None,
        attributes=pin.attributes if pin else None,
        quote=pin.quote if pin else None,
        code=fields.get(F.CODE) or None,
        step=pending_of(fields),
        steps=workflow.infos(pin.steps) if pin else None,
        rating=int(fields[F.RATING]) if fields.get(F.RATING) else None,
        rating_comment=fields.get(F.RATING_COMMENT) or None,
        tip=int(fields[F.TIP]) if fields.get(F.TIP) else None,
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
    view = view_from_fields(fields[F.ID], fields, [], None)
    return Job(order_id=view.id, state=view.state, skill=view.skill, pickup=view.pickup,
               dropoff=view.dropoff, note=view.note, category=view.category,
               attributes=view.attributes, quote=view.quote, steps=view.steps,
               step=view.step, slot=view.slot)  # fmt: skip
