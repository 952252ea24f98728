"""Encoders and decoders for the wire format, built once and reused.

msgspec decoders are cheap to call but not to build; every user of the
protocol (server, simulator, load test, third-party clients in Python) should
go through these module-level instances.

Decoding raises :class:`msgspec.DecodeError` for input that is not JSON and
:class:`msgspec.ValidationError` (a subclass) for JSON of the wrong shape; use
:func:`error_code` to turn either into the protocol's stable error code.
"""

from __future__ import annotations

import re

import msgspec

from protocol.messages import (
    CreateOrder,
    HttpError,
    LiveMessage,
    OrderEvent,
    OrderView,
    ServerMessage,
    WorkerMessage,
)

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
