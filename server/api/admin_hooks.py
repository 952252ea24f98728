"""The admin API's webhooks: subscriptions, their delivery logs and dead letters.

``POST /v1/admin/webhooks`` subscribes a URL to event types (``order.*``,
``order.assigned``, ``worker.*``, ``*``) and, optionally, categories; the
answer holds the ``whsec_`` secret its deliveries are signed with (made up
when the body has none). ``GET`` lists them or reads one, ``DELETE`` ends
one, ``POST .../enable`` turns back on one that a receiver's 410 turned
off. ``GET .../deliveries`` and ``GET .../dead`` read the newest delivery
attempts and the messages given up on (``?limit=``, default 100, at most
1000).
"""

from __future__ import annotations

import logging
import secrets

from starlette.requests import Request
from starlette.responses import Response

from protocol import codec
from protocol.webhooks import (
    DeadLetters,
    DeliveryLog,
    Subscription,
    SubscriptionList,
)
from server.api.admin import admin_of
from server.api.responses import json_body, json_response
from server.core.errors import Refused
from server.loops.webhook_deliveries import new_secret
from server.node.runtime import Runtime

log = logging.getLogger(__name__)

LIMIT = 100
MAX_LIMIT = 1000


async def _find(rt: Runtime, sub_id: str) -> Subscription:
    _, subs = await rt.deliveries.hooks.all()
    found = next((s for s in subs if s.id == sub_id), None)
    if found is None:
        raise Refused("subscription_not_found")
    return found


def _limit(request: Request) -> int:
    """The query's ``limit``: 1 to ``MAX_LIMIT``, ``LIMIT`` when absent."""
    raw = request.query_params.get("limit")
    if raw is None:
        return LIMIT
    if not (raw.isascii() and raw.isdigit()):
        raise Refused("invalid_field", "limit must be a whole number")
    limit = int(raw) if len(raw) <= 8 else MAX_LIMIT + 1  # no huge ints to parse
    if not 1 <= limit <= MAX_LIMIT:
        raise Refused("out_of_range", f"limit must be from 1 to {MAX_LIMIT}")
    return limit


async def create(request: Request) -> Response:
    rt, me = admin_of(request)
    body = await json_body(request, rt.settings, codec.new_subscription_decoder)
    sub = Subscription(
        id=f"sub_{secrets.token_hex(8)}", url=body.url, events=body.events,
        categories=body.categories, secret=body.secret or new_secret(), enabled=True,
        created_at=rt.store.now_ms(), description=body.description,
    )  # fmt: skip
    await rt.deliveries.hooks.save(sub)
    log.info("admin %s: webhook %s subscribed %s to %s", me.subject, sub.id, sub.url,
             ",".join(sub.events))  # fmt: skip
    return json_response(sub, 201)


async def list_all(request: Request) -> Response:
    rt, _ = admin_of(request)
    _, subs = await rt.deliveries.hooks.all()
    return json_response(SubscriptionList(subscriptions=subs))


async def get_one(request: Request) -> Response:
    rt, _ = admin_of(request)
    return json_response(await _find(rt, request.path_params["sub_id"]))


async def delete(request: Request) -> Response:
    rt, me = admin_of(request)
    sub = await _find(rt, request.path_params["sub_id"])
    await rt.deliveries.hooks.delete(sub.id)
    log.info("admin %s: webhook %s deleted", me.subject, sub.id)
    return Response(status_code=204)


async def enable(request: Request) -> Response:
    rt, me = admin_of(request)
    sub = await _find(rt, request.path_params["sub_id"])
    await rt.deliveries.hooks.set_enabled(sub.id, True)
    log.info("admin %s: webhook %s enabled", me.subject, sub.id)
    return json_response(await _find(rt, sub.id))


async def deliveries(request: Request) -> Response:
    rt, _ = admin_of(request)
    sub = await _find(rt, request.path_params["sub_id"])
    found = await rt.deliveries.hooks.deliveries(sub.id, _limit(request))
    return json_response(DeliveryLog(deliveries=found))


async def dead(request: Request) -> Response:
    rt, _ = admin_of(request)
    sub = await _find(rt, request.path_params["sub_id"])
    return json_response(DeadLetters(dead=await rt.deliveries.hooks.dead(sub.id, _limit(request))))


ROUTES = [
    ("/v1/admin/webhooks", create, ["POST"]),
    ("/v1/admin/webhooks", list_all, ["GET"]),
    ("/v1/admin/webhooks/{sub_id}", get_one, ["GET"]),
    ("/v1/admin/webhooks/{sub_id}", delete, ["DELETE"]),
    ("/v1/admin/webhooks/{sub_id}/enable", enable, ["POST"]),
    ("/v1/admin/webhooks/{sub_id}/deliveries", deliveries, ["GET"]),
    ("/v1/admin/webhooks/{sub_id}/dead", dead, ["GET"]),
]
