"""Customers' HTTP endpoints: create, read and cancel orders.

Every answer is JSON: an :class:`OrderView`, or an :class:`HttpError` with a
stable code. ``Idempotency-Key`` makes creation safe to retry: the key is
bound to a digest of the body and the order id before the order is created,
so a retry after any failure finds (or finishes creating) the same order.
Each customer may create ``order_rate_per_s`` orders a second (bursts of
``order_burst``); past that the answer is 429 with ``Retry-After``. A body
must arrive within ``body_timeout_s`` (else 408) and fit ``max_frame_bytes``
(else 413).
"""

from __future__ import annotations

import asyncio
import logging
import math

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from protocol import codec, ids
from protocol.errors import message
from protocol.messages import HttpError
from server import auth
from server.core.errors import ClientError
from server.dispatcher import fingerprint
from server.logs import Throttled
from server.runtime import Runtime
from server.store import keys
from server.store.keys import OrderId
from server.store.redis_store import Refused

log = logging.getLogger(__name__)

STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "order_not_found": 404,
    "request_timeout": 408,
    "not_cancellable": 409,
    "idempotency_conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
}


class RateLimited(Refused):
    """Too many orders from one customer; retry after ``retry_ms``."""

    def __init__(self, retry_ms: int) -> None:
        super().__init__("rate_limited")
        self.retry_ms = retry_ms


def json_response(msg: msgspec.Struct, status: int = 200) -> Response:
    return Response(codec.encode(msg), status, media_type="application/json")


def error_response(exc: ClientError) -> Response:
    response = json_response(
        HttpError(code=exc.code, message=exc.message), STATUS.get(exc.code, 400)
    )
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_ms / 1000)))
    return response


def _customer(request: Request) -> auth.Identity:
    rt: Runtime = request.app.state.runtime
    token = auth.bearer(request.headers.get("authorization"))
    return rt.verify(token, "customer")


async def _body(request: Request, limit: int, timeout_s: float) -> bytes:
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


def _order_id(request: Request) -> OrderId:
    oid = request.path_params["order_id"]
    if not ids.ORDER_RE.match(oid):
        raise Refused("order_not_found")
    return OrderId(oid)


async def create_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    s = rt.settings
    raw = await _body(request, s.max_frame_bytes, s.body_timeout_s)
    try:
        body = codec.decode(codec.create_order_decoder, raw)
    except msgspec.DecodeError as exc:
        raise Refused(codec.error_code(exc), str(exc)) from exc
    rt.dispatcher.served(body.city)
    oid = keys.new_order_id(keys.City(body.city))
    key = request.headers.get("idempotency-key")
    if key is not None:
        if not ids.IDEMPOTENCY_KEY_RE.match(key):
            raise Refused("bad_request", "Idempotency-Key must be 1-64 printable ASCII characters")
        mine = fingerprint(body)
        bound_fp, oid = await rt.store.reserve_idempotency(
            me.subject, key, mine, oid, s.idempotency_ttl_s
        )
        if bound_fp != mine:
            raise Refused("idempotency_conflict")
    wait_ms = await rt.store.take_order_token(me.subject, s.order_rate_per_s, s.order_burst)
    if wait_ms:
        raise RateLimited(wait_ms)
    created = await rt.dispatcher.create_order(oid, me.subject, body)
    if created is not None:
        return json_response(created, 201)
    return json_response(await rt.dispatcher.view(oid, me.subject), 200)


async def get_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    return json_response(await rt.dispatcher.view(_order_id(request), me.subject))


async def cancel_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    oid = _order_id(request)
    await rt.dispatcher.cancel(oid, me.subject)
    return json_response(await rt.dispatcher.view(oid, me.subject))


async def client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    return error_response(exc)


_unavailable = Throttled(log, "answered 503: %s")


async def store_unavailable(request: Request, exc: Exception) -> Response:
    _unavailable(exc)
    code = "unavailable"  # the cause is logged, not told: it may name the store's address
    return json_response(HttpError(code=code, message=message(code)), STATUS[code])
