"""Customers' HTTP endpoints: create, read and cancel orders; do their steps,
rate them and tip their workers.

Every answer is JSON: an :class:`OrderView`, or an :class:`HttpError` with a
stable code (``server/api/responses.py``). ``Idempotency-Key`` makes creation
safe to retry: the key is bound to a digest of the body and the order id
before the order is created, so a retry after any failure finds (or finishes
creating) the same order. A request refused before that (its body checked,
the rate limit) binds nothing: the key stays free for the corrected request,
as Stripe and the IETF Idempotency-Key draft do. Each customer may create
``order_rate_per_s`` orders a second (bursts of ``order_burst``); past that
the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from protocol import codec, ids
from protocol.messages import CreateOrder, DoStep
from server.api.responses import RateLimited, decoded, json_body, json_response, read_body
from server.core.errors import Refused
from server.node.runtime import Runtime
from server.process import auth
from server.services.dispatcher import fingerprint
from server.store import keys
from server.store.keys import OrderId


def _customer(request: Request) -> auth.Identity:
    rt: Runtime = request.app.state.runtime
    token = auth.bearer(request.headers.get("authorization"))
    return rt.verify(token, "customer")


def order_id_of(request: Request) -> OrderId:
    """The path's order id; ``order_not_found`` when it is not one."""
    oid = request.path_params["order_id"]
    if not ids.ORDER_RE.match(oid):
        raise Refused("order_not_found")
    return OrderId(oid)


async def create_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    s = rt.settings
    raw = await read_body(request, s.max_frame_bytes, s.body_timeout_s)
    body = decoded(codec.create_order_decoder, raw)
    key = request.headers.get("idempotency-key")
    if key is not None and not ids.IDEMPOTENCY_KEY_RE.match(key):
        raise Refused("bad_request", "Idempotency-Key must be 1-64 printable ASCII characters")
    oid = keys.new_order_id(keys.City(body.city))
    fields = rt.dispatcher.order_fields(oid, me.subject, body)
    wait_ms = await rt.store.take_order_token(me.subject, s.order_rate_per_s, s.order_burst)
    if wait_ms:
        raise RateLimited(wait_ms)
    if key is not None:
        bound = await _bind(rt, me.subject, key, body, oid)
        if bound != oid:  # a retry: the first request's order, finished now if need be
            oid, fields = bound, rt.dispatcher.order_fields(bound, me.subject, body)
    created = await rt.dispatcher.place(oid, fields)
    if created is not None:
        return json_response(created, 201)
    return json_response(await rt.dispatcher.view(oid, me.subject), 200)


async def _bind(rt: Runtime, customer: str, key: str, body: CreateOrder, oid: OrderId) -> OrderId:
    """Bind ``key`` to this body and ``oid`` unless it is bound; the order it is
    bound to, or ``idempotency_conflict`` when it was bound to another body."""
    mine = fingerprint(body)
    bound_fp, bound = await rt.store.reserve_idempotency(
        customer, key, mine, oid, rt.settings.idempotency_ttl_s
    )
    if bound_fp != mine:
        raise Refused("idempotency_conflict")
    return bound


async def get_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    return json_response(await rt.dispatcher.view(order_id_of(request), me.subject))


async def do_step(request: Request) -> Response:
    """``POST /v1/orders/{id}/steps/{step}``: the customer does a step of the
    order's workflow (an approval's decision, a confirmation)."""
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    oid = order_id_of(request)
    body = await step_body(request, rt)
    await rt.dispatcher.workflows.perform(
        oid, "customer", me.subject, request.path_params["step"], body.decision, body.data
    )
    return json_response(await rt.dispatcher.view(oid, me.subject))


async def step_body(request: Request, rt: Runtime) -> DoStep:
    """A step's body (empty is no decision and no data)."""
    return await json_body(request, rt.settings, codec.do_step_decoder, DoStep())


async def rate_order(request: Request) -> Response:
    """``POST /v1/orders/{id}/rating``: the customer rates its completed order, once."""
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    oid = order_id_of(request)
    body = await json_body(request, rt.settings, codec.rate_order_decoder)
    await rt.performance.rate(oid, me.subject, body.stars, body.comment or "")
    return json_response(await rt.dispatcher.view(oid, me.subject))


async def tip_order(request: Request) -> Response:
    """``POST /v1/orders/{id}/tip``: the customer tips its completed order's worker, once."""
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    oid = order_id_of(request)
    body = await json_body(request, rt.settings, codec.tip_order_decoder)
    await rt.earnings.tip(oid, me.subject, body.amount)
    return json_response(await rt.dispatcher.view(oid, me.subject))


async def cancel_order(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    me = _customer(request)
    oid = order_id_of(request)
    await rt.dispatcher.cancel(oid, "customer", me.subject)
    return json_response(await rt.dispatcher.view(oid, me.subject))


ROUTES = [
    ("/v1/orders", create_order, ["POST"]),
    ("/v1/orders/{order_id}", get_order, ["GET"]),
    ("/v1/orders/{order_id}/cancel", cancel_order, ["POST"]),
    ("/v1/orders/{order_id}/steps/{step}", do_step, ["POST"]),
    ("/v1/orders/{order_id}/rating", rate_order, ["POST"]),
    ("/v1/orders/{order_id}/tip", tip_order, ["POST"]),
]
