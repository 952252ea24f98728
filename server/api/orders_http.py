"""Customers' HTTP endpoints: create, read and cancel orders.

Every answer is JSON: an :class:`OrderView`, or an :class:`HttpError` with a
stable code. ``Idempotency-Key`` makes creation safe to retry: the key is
bound to a digest of the body and the order id before the order is created,
so a retry after any failure finds (or finishes creating) the same order.
"""

from __future__ import annotations

import logging
import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from protocol import codec
from protocol.errors import message
from protocol.messages import HttpError
from server import auth
from server.core.errors import ClientError
from server.dispatcher import fingerprint
from server.runtime import Runtime
from server.store import keys
from server.store.keys import OrderId
from server.store.redis_store import Refused

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")

STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "order_not_found": 404,
    "not_cancellable": 409,
    "idempotency_conflict": 409,
    "unavailable": 503,
}


def json_response(msg: msgspec.Struct, status: int = 200) -> Response:
    return Response(codec.encode(msg), status, media_type="application/json")


def error_response(exc: ClientError) -> Response:
    return json_response(HttpError(code=exc.code, message=exc.message), STATUS.get(exc.code, 400))


def _customer(request: Request) -> auth.Identity:
    rt: Runtime = request.app.state.runtime
    token = auth.bearer(request.headers.get("authorization"))
    return auth.verify(rt.settings.jwt_secret, token, "customer")


async def _body(request: Request, limit: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused("bad_request", f"body larger than {limit} bytes")
    return body


async def create_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    try:
        body = codec.create_order_decoder.decode(await _body(request, rt.settings.max_frame_bytes))
    except msgspec.DecodeError as exc:
        raise Refused(codec.error_code(exc), str(exc)) from exc
    oid = keys.new_order_id(keys.City(body.city))
    key = request.headers.get("idempotency-key")
    if key is not None:
        if not IDEMPOTENCY_KEY.match(key):
            raise Refused("bad_request", "Idempotency-Key must be 1-64 printable ASCII characters")
        mine = fingerprint(body)
        bound_fp, oid = await rt.store.reserve_idempotency(
            me.subject, key, mine, oid, rt.settings.idempotency_ttl_s
        )
        if bound_fp != mine:
            raise Refused("idempotency_conflict", "this Idempotency-Key was used for another order")
    created = await rt.dispatcher.create_order(oid, me.subject, body)
    if created is not None:
        return json_response(created, 201)
    return json_response(await rt.dispatcher.view(oid, me.subject), 200)


async def get_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    view = await rt.dispatcher.view(OrderId(request.path_params["order_id"]), me.subject)
    return json_response(view)


async def cancel_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    oid = OrderId(request.path_params["order_id"])
    if keys.city_of(oid) is None:
        raise Refused("order_not_found", "no such order")
    await rt.dispatcher.cancel(oid, me.subject)
    return json_response(await rt.dispatcher.view(oid, me.subject))


async def client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    return error_response(exc)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    code = "internal"
    return json_response(HttpError(code=code, message=message(code)), 500)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    code = "unavailable"
    return json_response(HttpError(code=code, message=str(exc)), STATUS[code])
