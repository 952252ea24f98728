"""The operators' overrides over HTTP, with an ``admin`` token (``PROTOCOL.md`` §19).

Orders: ``POST /v1/admin/orders/{id}/reassign`` takes the order from whoever
has it (its offer's holders or its worker, who are never offered it again)
and dispatches it afresh; ``.../extend`` moves the deadline it waits on.

Workers (``/v1/admin/workers/{city}/{id}``): read one as operators see it;
``pause`` it for a while, ``resume`` it, ``block`` or ``unblock`` it (for
every customer, or for one). Each call is one atomic step, recorded as an
event with the operator as ``actor`` (server/services/overrides.py).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from protocol import codec, ids
from protocol.admin import Block, Reassign, WorkerStanding
from protocol.messages import WorkerState
from server.api.admin import admin_of, order_view
from server.api.orders_http import order_id_of
from server.api.responses import json_body, json_response
from server.core.errors import Refused
from server.node.runtime import Runtime
from server.store.keys import WorkerId
from server.store.overrides import HoldAction

log = logging.getLogger(__name__)


def worker_of(request: Request, rt: Runtime) -> tuple[str, WorkerId]:
    """The path's city (one this deployment serves) and worker id."""
    city, wid = request.path_params["city"], request.path_params["worker_id"]
    if not ids.NAME_RE.match(city):
        raise Refused("unknown_city")
    rt.dispatcher.served(city)
    if not ids.SUBJECT_RE.match(wid):
        raise Refused("invalid_field", "the path's worker id is not a worker id")
    return city, WorkerId(wid)


async def reassign(request: Request) -> Response:
    rt, me = admin_of(request)
    oid = order_id_of(request)
    body = await json_body(request, rt.settings, codec.reassign_decoder, Reassign())
    taken = await rt.overrides.reassign(oid, me.subject, body.reason or "")
    log.info("admin %s: reassigned order %s (from %s)", me.subject, oid, ",".join(taken))
    return await order_view(rt, oid)


async def extend(request: Request) -> Response:
    rt, me = admin_of(request)
    oid = order_id_of(request)
    body = await json_body(request, rt.settings, codec.extend_decoder)
    due = await rt.overrides.extend(oid, me.subject, body.by_s)
    log.info("admin %s: extended order %s by %d s (due %d)", me.subject, oid, body.by_s, due)
    return await order_view(rt, oid)


async def get_worker(request: Request) -> Response:
    rt, _ = admin_of(request)
    city, wid = worker_of(request, rt)
    return json_response(await _standing(rt, city, wid))


async def _standing(rt: Runtime, city: str, wid: WorkerId) -> WorkerStanding:
    store = rt.overrides.store
    record = await store.worker_fields(city, wid)
    paused, blocked, customers = await store.holds_of(city, wid)
    if paused is not None and paused <= rt.store.now_ms():
        paused = None  # over: the search lifts it when it next meets the worker
    figures, last_job = await rt.performance.figures(city, wid, rt.settings.min_samples)
    return WorkerStanding(
        worker_id=wid, city=city, state=WorkerState(record.get("state", "offline")),
        node=record.get("node") or None, jobs=[j for j in record.get("jobs", "").split(",") if j],
        paused_until=paused, blocked=blocked, blocked_for=customers,
        performance=figures, last_job_at=last_job,
    )  # fmt: skip


async def pause(request: Request) -> Response:
    rt, me = admin_of(request)
    city, wid = worker_of(request, rt)
    body = await json_body(request, rt.settings, codec.pause_decoder)
    await rt.overrides.hold(city, wid, "pause", me.subject, body.for_s, None, body.reason)
    log.info("admin %s: paused worker %s/%s for %d s", me.subject, city, wid, body.for_s)
    return json_response(await _standing(rt, city, wid))


async def resume(request: Request) -> Response:
    rt, me = admin_of(request)
    city, wid = worker_of(request, rt)
    await rt.overrides.hold(city, wid, "resume", me.subject)
    log.info("admin %s: resumed worker %s/%s", me.subject, city, wid)
    return json_response(await _standing(rt, city, wid))


async def _block(request: Request, blocked: bool) -> Response:
    rt, me = admin_of(request)
    city, wid = worker_of(request, rt)
    body = await json_body(request, rt.settings, codec.block_decoder, Block())
    action: HoldAction = "block" if blocked else "unblock"
    await rt.overrides.hold(city, wid, action, me.subject, 0, body.customer, body.reason)
    whom = f" for customer {body.customer}" if body.customer else ""
    log.info("admin %s: %sed worker %s/%s%s", me.subject, action, city, wid, whom)
    return json_response(await _standing(rt, city, wid))


async def block(request: Request) -> Response:
    return await _block(request, True)


async def unblock(request: Request) -> Response:
    return await _block(request, False)


async def waive(request: Request) -> Response:
    rt, me = admin_of(request)
    city, wid = worker_of(request, rt)
    body = await json_body(request, rt.settings, codec.waive_decoder)
    await rt.performance.waive(city, wid, body.order_id, me.subject, body.reason or "")
    log.info("admin %s: waived worker %s/%s's hand-back of %s", me.subject, city, wid,
             body.order_id)  # fmt: skip
    return json_response(await _standing(rt, city, wid))


_W = "/v1/admin/workers/{city}/{worker_id}"
ROUTES = [
    ("/v1/admin/orders/{order_id}/reassign", reassign, ["POST"]),
    ("/v1/admin/orders/{order_id}/extend", extend, ["POST"]),
    (_W, get_worker, ["GET"]),
    (f"{_W}/pause", pause, ["POST"]),
    (f"{_W}/resume", resume, ["POST"]),
    (f"{_W}/block", block, ["POST"]),
    (f"{_W}/unblock", unblock, ["POST"]),
    (f"{_W}/waive", waive, ["POST"]),
]
