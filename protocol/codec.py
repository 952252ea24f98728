"""Encoders and decoders for the wire format, built once and reused.

msgspec decoders are cheap to call but not to build; every user of the
protocol (server, simulator, load test, third-party clients in Python) should
go through these module-level instances.

Decoding raises :class:`msgspec.DecodeError` for input that is not JSON and
:class:`msgspec.ValidationError` (a subclass) for JSON of the wrong shape; use
:func:`error_code` to turn either into the protocol's stable error code. Use
:func:`decode` on input from outside: it also turns JSON nested too deeply to
decode (msgspec raises ``RecursionError``) into a ``DecodeError``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from protocol.admin import Block, Cities, Extend, Pause, Payouts, Reassign, Waive, WorkerStanding
from protocol.catalogue import Category, CategoryApplied, CategoryDefinition, CategoryList
from protocol.integral import integral, type_info
from protocol.messages import (
    CreateOrder,
    DoStep,
    EarningsReport,
    Figures,
    HttpError,
    LiveMessage,
    OrderEvent,
    OrderView,
    RateOrder,
    ServerMessage,
    TipOrder,
    WorkerMessage,
)
from protocol.webhooks import (
    DeadLetters,
    DeliveryLog,
    NewSubscription,
    OrderHappened,
    Subscription,
    SubscriptionList,
    WorkerHappened,
)

T = TypeVar("T")

_GOT_FLOAT = "got `float`"
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `([^`]*)`")
_OUT_OF_RANGE = re.compile(r"Expected `(float|int)` [<>]|out of range")

encoder = msgspec.json.Encoder()
encode = encoder.encode

worker_decoder: msgspec.json.Decoder[WorkerMessage] = msgspec.json.Decoder(WorkerMessage)
server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
live_decoder: msgspec.json.Decoder[LiveMessage] = msgspec.json.Decoder(LiveMessage)
create_order_decoder = msgspec.json.Decoder(CreateOrder)
order_view_decoder = msgspec.json.Decoder(OrderView)
order_event_decoder = msgspec.json.Decoder(OrderEvent)
http_error_decoder = msgspec.json.Decoder(HttpError)
do_step_decoder = msgspec.json.Decoder(DoStep)
rate_order_decoder = msgspec.json.Decoder(RateOrder)
tip_order_decoder = msgspec.json.Decoder(TipOrder)
earnings_report_decoder = msgspec.json.Decoder(EarningsReport)
payouts_decoder = msgspec.json.Decoder(Payouts)
cities_decoder = msgspec.json.Decoder(Cities)
category_definition_decoder = msgspec.json.Decoder(CategoryDefinition)
category_decoder = msgspec.json.Decoder(Category)
category_list_decoder = msgspec.json.Decoder(CategoryList)
category_applied_decoder = msgspec.json.Decoder(CategoryApplied)
new_subscription_decoder = msgspec.json.Decoder(NewSubscription)
subscription_decoder = msgspec.json.Decoder(Subscription)
subscription_list_decoder = msgspec.json.Decoder(SubscriptionList)
delivery_log_decoder = msgspec.json.Decoder(DeliveryLog)
dead_letters_decoder = msgspec.json.Decoder(DeadLetters)
order_happened_decoder = msgspec.json.Decoder(OrderHappened)
worker_happened_decoder = msgspec.json.Decoder(WorkerHappened)
reassign_decoder = msgspec.json.Decoder(Reassign)
extend_decoder = msgspec.json.Decoder(Extend)
pause_decoder = msgspec.json.Decoder(Pause)
waive_decoder = msgspec.json.Decoder(Waive)
block_decoder = msgspec.json.Decoder(Block)
worker_standing_decoder = msgspec.json.Decoder(WorkerStanding)
figures_decoder = msgspec.json.Decoder(Figures)


class _Id(msgspec.Struct):
    id: str | None = None


_id_decoder = msgspec.json.Decoder(_Id)


def decode(decoder: msgspec.json.Decoder[T], data: str | bytes) -> T:
    """``decoder.decode(data)``, with too-deep nesting reported as a ``DecodeError``,
    and integral numbers (``420.0``) taken where an integer is due, as JSON Schema
    counts them (:mod:`protocol.integral`)."""
    try:
        return decoder.decode(data)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None
    except msgspec.ValidationError as exc:
        if _GOT_FLOAT not in str(exc):
            raise
        return integral_decode(decoder, data)


def integral_decode(decoder: msgspec.json.Decoder[T], data: str | bytes) -> T:
    """What ``decoder`` decodes ``data`` to once each integral float where an
    ``int`` is due is made an int: the slow path of :func:`decode`, taken only
    for such input. Raises ``DecodeError`` like :func:`decode`."""
    try:
        value = msgspec.json.decode(data)
        t: Any = decoder.type
        found: T = msgspec.convert(integral(value, type_info(t)), t)
        return found
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None


def readable_id(data: str | bytes) -> str | None:
    """The client's ``id`` of a frame that failed to decode, if it is a JSON object
    with a string ``id`` of at most 64 characters; else None."""
    try:
        found = _id_decoder.decode(data).id
    except (msgspec.DecodeError, RecursionError):
        return None
    return found if found is not None and len(found) <= 64 else None


def error_field(exc: msgspec.DecodeError) -> str | None:
    """Where in the document a decoding failure is (``attributes.weight_kg``,
    ``steps[0].name``), or None when it is the document as a whole."""
    text = str(exc)
    _, at, path = text.rpartition(" - at `")
    field = path.rstrip("`").removeprefix("$").removeprefix(".") if at else ""
    field = field.partition("[...]")[0]  # msgspec does not name a dict's key
    unknown = _UNKNOWN_FIELD.match(text)
    if unknown:  # msgspec names the object that holds it: name the field itself
        field = f"{field}.{unknown[1]}" if field else unknown[1]
    return field or None


def error_code(exc: msgspec.DecodeError) -> str:
    """The stable protocol error code for a frame that failed to decode."""
    if not isinstance(exc, msgspec.ValidationError):
        return "bad_json"
    text = str(exc)
    if "Invalid value" in text and "`$.type`" in text:
        return "unknown_type"
    if "missing required field" in text:
        return "missing_field"
    if _OUT_OF_RANGE.search(text):
        return "out_of_range"
    return "invalid_field"
