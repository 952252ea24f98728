"""What every HTTP endpoint answers with: JSON bodies, coded errors with
their statuses, and request bodies read within their limits.

Every answer is JSON: the requested Struct, or an :class:`HttpError` with a
stable code (and, for input refused field by field, ``errors`` naming each
field). A request body must arrive within ``body_timeout_s`` (else 408
``request_timeout``) and fit ``max_frame_bytes`` (else 413 ``too_large``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from protocol import codec
from protocol.errors import message
from protocol.messages import FieldError, HttpError
from server.core.errors import ClientError, InvalidFields, Refused
from server.process.logs import Throttled
from server.process.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_your_step": 403,
    "order_not_found": 404,
    "category_not_found": 404,
    "subscription_not_found": 404,
    "request_timeout": 408,
    "not_cancellable": 409,
    "idempotency_conflict": 409,
    "category_retired": 409,
    "illegal_step": 409,
    "not_reassignable": 409,
    "not_extendable": 409,
    "not_held": 409,
    "not_waivable": 409,
    "not_rateable": 409,
    "already_rated": 409,
    "not_tippable": 409,
    "already_tipped": 409,
    "too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
}


class RateLimited(Refused):
    """Too many requests from one client; retry after ``retry_ms``."""

    def __init__(self, retry_ms: int) -> None:
        super().__init__("rate_limited")
        self.retry_ms = retry_ms


class BadBody(InvalidFields):
    """A body that does not decode: its code, with the field where it failed."""

    def __init__(self, exc: msgspec.DecodeError) -> None:
        field = codec.error_field(exc)
        code = codec.error_code(exc)
        errors = [FieldError(field, code, str(exc).partition(" - at `")[0])] if field else []
        super().__init__(code, str(exc), errors)


def json_response(msg: msgspec.Struct, status: int = 200) -> Response:
    return Response(codec.encode(msg), status, media_type="application/json")


def error_response(exc: ClientError) -> Response:
    errors = exc.errors if isinstance(exc, InvalidFields) and exc.errors else None
    body = HttpError(code=exc.code, message=exc.message, errors=errors)
    response = json_response(body, STATUS.get(exc.code, 400))
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_ms / 1000)))
    return response


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body: ``too_large`` past ``limit`` bytes, ``request_timeout``
    when it does not arrive within ``timeout_s``."""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise Refused("too_large", f"body larger than {limit} bytes")
    except TimeoutError:
        raise Refused(
            "request_timeout", f"the body did not arrive within {timeout_s:g} s"
        ) from None
    return bytes(body)


async def json_body(
    request: Request, settings: Settings, decoder: msgspec.json.Decoder[T], empty: T | None = None
) -> T:
    """The request's JSON body as its Struct, read within the settings' size and
    time limits; ``empty`` for no body at all, where one may be left out (a body
    of blanks is not JSON: ``bad_json``, as the document says)."""
    raw = await read_body(request, settings.max_frame_bytes, settings.body_timeout_s)
    return empty if empty is not None and not raw else decoded(decoder, raw)


def decoded(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    """A JSON body as its Struct, or :class:`BadBody` naming where it failed."""
    try:
        return codec.decode(decoder, raw)
    except msgspec.DecodeError as exc:
        raise BadBody(exc) from exc


async def client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    return error_response(exc)


_unavailable = Throttled(log, "answered 503: %s")


async def store_unavailable(request: Request, exc: Exception) -> Response:
    _unavailable(exc)
    code = "unavailable"  # the cause is logged, not told: it may name the store's address
    return json_response(HttpError(code=code, message=message(code)), STATUS[code])
