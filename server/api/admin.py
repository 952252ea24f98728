"""The admin HTTP API: what operators do, with an ``admin`` token.

Categories (``/v1/admin/categories``): list them, read one (``?version=N``
for a recent earlier version), put a definition (JSON, or TOML with
``Content-Type: application/toml``), retire one (no new orders; open ones
carry on) or restore it. A definition is checked completely before it is
stored; ``invalid_category`` lists every problem with its path. Putting the
definition in force again changes nothing (``changed`` false, same version).

Orders (``/v1/admin/orders/{id}``): read any order, do its pending step
whoever it belongs to (an approval's decision included), or cancel it at any
point before it ended (no fee).

Cities (``/v1/admin/cities``): the cities this deployment serves, so that
the operators' commands settle the server's cities, not their own settings'.

Every call that changes something is logged with the operator's id, and a
step or a cancel is recorded on the order (``by`` operator, ``actor`` the
operator's id).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from protocol import ids
from protocol.admin import Cities
from protocol.catalogue import Category, CategoryApplied, CategoryDefinition, CategoryList
from protocol.errors import message
from server import categories
from server.api.orders_http import order_id_of, step_body
from server.api.responses import json_response, read_body
from server.core.errors import InvalidFields, Refused
from server.node.runtime import Runtime
from server.process import auth
from server.store.keys import OrderId

log = logging.getLogger(__name__)

TOML_TYPES = ("application/toml", "text/toml", "text/x-toml")
MAX_VERSION = 2**31 - 1  # as the document says


def admin_of(request: Request) -> tuple[Runtime, auth.Identity]:
    """The runtime and the operator an admin token names (401/403 otherwise)."""
    rt: Runtime = request.app.state.runtime
    token = auth.bearer(request.headers.get("authorization"))
    return rt, rt.verify(token, "admin")


def _key(request: Request) -> str:
    """The path's category key: not found when it cannot be one, or (to put a
    definition under it) refused as an invalid field."""
    key = request.path_params["key"]
    if ids.NAME_RE.match(key):
        return str(key)
    if request.method == "PUT":
        raise Refused("invalid_field", "a category key is 1-32 of a-z, 0-9, '_' and '-'")
    raise Refused("category_not_found", f"no category {key[:40]!r}")


def _current(rt: Runtime, key: str) -> Category:
    found = rt.catalogue.categories.get(key)
    if found is None:
        raise Refused("category_not_found", f"no category {key!r}")
    return found


async def list_categories(request: Request) -> Response:
    rt, _ = admin_of(request)
    return json_response(CategoryList(categories=list(rt.catalogue.categories.values())))


async def get_category(request: Request) -> Response:
    rt, _ = admin_of(request)
    key = _key(request)
    current = _current(rt, key)
    wanted = request.query_params.get("version")
    if wanted is None or wanted == str(current.version):
        return json_response(current)
    if not (wanted.isascii() and wanted.isdigit()):
        raise Refused("invalid_field", "version must be a whole number")
    version = int(wanted) if len(wanted) <= 10 else 0  # no huge ints to parse
    if not 1 <= version <= MAX_VERSION:
        raise Refused("out_of_range", f"version must be from 1 to {MAX_VERSION}")
    definition = await rt.catalogue.store.version(key, version)
    if definition is None:
        raise Refused("category_not_found", f"category {key!r} has no version {wanted[:12]!r}")
    return json_response(Category(definition=definition, version=version, updated_at=0,
                                  retired=current.retired))  # fmt: skip


def _definition(request: Request, raw: bytes, key: str) -> CategoryDefinition:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        definition = categories.parse(raw, "the body", toml=kind in TOML_TYPES)
    except categories.BadDefinition as bad:
        raise InvalidFields("invalid_category", message("invalid_category"), bad.errors) from bad
    if definition.key != key:
        raise Refused("invalid_field", f"the definition's key {definition.key!r} is not {key!r}")
    return definition


async def put_category(request: Request) -> Response:
    rt, me = admin_of(request)
    key = _key(request)
    s = rt.settings
    definition = _definition(
        request, await read_body(request, s.max_frame_bytes, s.body_timeout_s), key
    )
    result = await rt.catalogue.apply(definition, me.subject)
    if result.changed:
        log.info("admin %s: category %s is now version %d", me.subject, key, result.version)
    body = CategoryApplied(category=_current(rt, key), changed=bool(result.changed))
    return json_response(body, 201 if result.changed and result.version == 1 else 200)


async def _retire(request: Request, retired: bool) -> Response:
    rt, me = admin_of(request)
    key = _key(request)
    result = await rt.catalogue.set_retired(key, retired, me.subject)
    if result.changed:
        log.info("admin %s: category %s %s", me.subject, key, "retired" if retired else "restored")
    return json_response(CategoryApplied(category=_current(rt, key), changed=bool(result.changed)))


async def order_view(rt: Runtime, oid: OrderId) -> Response:
    view = await rt.store.order_view(oid)
    if view is None:
        raise Refused("order_not_found")
    return json_response(view)


async def force_step(request: Request) -> Response:
    """``POST /v1/admin/orders/{id}/steps/{step}``: an operator does the pending
    step, whoever it belongs to (an approval's decision included)."""
    rt, me = admin_of(request)
    oid = order_id_of(request)
    body = await step_body(request, rt)
    step = request.path_params["step"]
    await rt.dispatcher.workflows.perform(
        oid, "operator", me.subject, step, body.decision, body.data
    )
    log.info("admin %s: did step %s of order %s", me.subject, step, oid)
    return await order_view(rt, oid)


async def force_cancel(request: Request) -> Response:
    """``POST /v1/admin/orders/{id}/cancel``: an operator cancels an order that has
    not ended, whatever its category's rules say (no fee)."""
    rt, me = admin_of(request)
    oid = order_id_of(request)
    await rt.dispatcher.cancel(oid, "operator", me.subject)
    log.info("admin %s: cancelled order %s", me.subject, oid)
    return await order_view(rt, oid)


async def get_order(request: Request) -> Response:
    """``GET /v1/admin/orders/{id}``: any customer's order."""
    rt, _ = admin_of(request)
    return await order_view(rt, order_id_of(request))


async def served_cities(request: Request) -> Response:
    """``GET /v1/admin/cities``: the cities this deployment serves."""
    rt, _ = admin_of(request)
    return json_response(Cities(cities=list(rt.settings.cities)))


async def retire_category(request: Request) -> Response:
    return await _retire(request, True)


async def restore_category(request: Request) -> Response:
    return await _retire(request, False)


ROUTES = [
    ("/v1/admin/categories", list_categories, ["GET"]),
    ("/v1/admin/categories/{key}", get_category, ["GET"]),
    ("/v1/admin/categories/{key}", put_category, ["PUT"]),
    ("/v1/admin/categories/{key}/retire", retire_category, ["POST"]),
    ("/v1/admin/categories/{key}/restore", restore_category, ["POST"]),
    ("/v1/admin/orders/{order_id}", get_order, ["GET"]),
    ("/v1/admin/orders/{order_id}/steps/{step}", force_step, ["POST"]),
    ("/v1/admin/orders/{order_id}/cancel", force_cancel, ["POST"]),
    ("/v1/admin/cities", served_cities, ["GET"]),
]
