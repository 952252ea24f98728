"""The OpenAPI 3.1 document of the HTTP endpoints: the customers' orders and
the operators' admin API, from the Structs (``protocol/schema/openapi.json``).

Built on :mod:`protocol.schema`'s helpers, so every body's schema comes from
its Struct; the statuses and codes are those of ``PROTOCOL.md`` §12, §14 and
§19. Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from protocol import ids
from protocol.errors import ERROR_CODES
from protocol.messages import FIELD
from protocol.schema import COMPONENT_REF, DOCS, HTTP_BODIES, _components, _info, _ref

JSON = dict[str, Any]

COMMON_ERRORS: dict[int, tuple[str, ...]] = {
    401: ("unauthorized",),
    403: ("forbidden",),
    500: ("internal",),
    503: ("unavailable",),
}
BODY_ERRORS = ("bad_json", "missing_field", "invalid_field", "out_of_range", "bad_request")
# What reading any request body can end in, besides its own errors.
READ_ERRORS: dict[int, tuple[str, ...]] = {408: ("request_timeout",), 413: ("too_large",)}
WORKER_ERRORS: dict[int, tuple[str, ...]] = {400: ("unknown_city", "invalid_field")}
LEDGER_DAYS = 100  # how far back the day books reach (server/store/scripts.py; PROTOCOL.md §19)
STEP_ERRORS: dict[int, tuple[str, ...]] = {
    400: (*BODY_ERRORS, "invalid_step_data"),
    403: ("forbidden", "not_your_step"),
    404: ("order_not_found",),
    409: ("illegal_step",),
    **READ_ERRORS,
}


def _error_response(status: int, codes: tuple[str, ...]) -> JSON:
    meanings = " ".join(f"`{code}`: {ERROR_CODES[code]}" for code in codes)
    examples = {code: {"value": {"code": code, "message": ERROR_CODES[code]}} for code in codes}
    response: JSON = {
        "description": f"{HTTPStatus(status).phrase}. {meanings}",
        "content": {"application/json": {"schema": _ref("HttpError"), "examples": examples}},
    }
    if status == 429:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again.", "required": True,
            "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip
    return response


def _responses(
    ok: Mapping[int, str], errors: Mapping[int, tuple[str, ...]], body: str = "OrderView"
) -> JSON:
    """``ok`` statuses answering ``body``, then the errors (the common ones merged in)."""
    responses: JSON = {
        str(status): {"description": text, "content": {"application/json": {"schema": _ref(body)}}}
        for status, text in ok.items()
    }
    merged = dict(errors)
    for status, codes in COMMON_ERRORS.items():
        merged[status] = tuple(dict.fromkeys((*codes, *merged.get(status, ()))))
    for status, codes in sorted(merged.items()):
        responses[str(status)] = _error_response(status, codes)
    return responses


def _path(name: str, description: str, pattern: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": pattern}}  # fmt: skip


def _query(name: str, description: str, schema: JSON) -> JSON:
    return {"name": name, "in": "query", "required": True, "description": description,
            "schema": schema}  # fmt: skip


DATE: JSON = {"type": "string", "format": "date"}
ORDER_ID = _path("id", "The order id (opaque, e.g. `berlin.7f3k9q2x`).", ids.ORDER)
STEP = _path("step", "The step's name, as in the order's `steps` (e.g. `approve_large_dog`).",
             FIELD)  # fmt: skip
KEY = _path("key", "The category's key, e.g. `pet-grooming`.", ids.NAME)
CITY = _path("city", "The worker's city, e.g. `berlin`.", ids.NAME)
WORKER = _path("worker_id", "The worker's id (its token's `sub`).", ids.SUBJECT)
SUBSCRIPTION = _path("id", "The subscription's id (`sub_` and 16 hex digits).",
                     r"^sub_[0-9a-f]{16}\Z")  # fmt: skip
ADMIN: list[JSON] = [{"admin": []}]


def _idempotency_key() -> JSON:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "1-64 printable ASCII characters, one key per order the customer means "
        "to create. "
        "Repeating the key with the same body returns the same order (200); with a "
        "different body, 409 `idempotency_conflict`.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "pattern": ids.IDEMPOTENCY_KEY,
        },
    }


def _body(name: str, toml: bool = False, required: bool = True) -> JSON:
    """A JSON body of ``name`` (or TOML); ``required`` False where an empty body is
    taken as ``{}``."""
    content: JSON = {"application/json": {"schema": _ref(name)}}
    if toml:
        content["application/toml"] = {"schema": _ref(name)}
    return {"required": required, "content": content}


def _reading(errors: Mapping[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
    """``errors`` with what reading a body can end in."""
    return {**errors, **READ_ERRORS}


def _create_order() -> JSON:
    return {
        "operationId": "createOrder",
        "summary": "Create an order; dispatch starts at once.",
        "parameters": [_idempotency_key()],
        "requestBody": _body("CreateOrder"),
        "responses": _responses(
            {
                200: "The order made earlier with this Idempotency-Key and body.",
                201: "The new order, with its quote when it is of a category.",
            },
            _reading(
                {
                    400: (*BODY_ERRORS, "unknown_city", "unknown_category", "invalid_attributes"),
                    409: ("idempotency_conflict", "category_retired"),
                    429: ("rate_limited",),
                }
            ),
        ),
    }


def _customer_paths() -> JSON:
    found = {404: ("order_not_found",)}
    return {
        "/v1/orders": {"post": _create_order()},
        "/v1/orders/{id}": {
            "get": {
                "operationId": "getOrder",
                "summary": "The order with its full event history and the worker's position.",
                "parameters": [ORDER_ID],
                "responses": _responses({200: "The order."}, found),
            }
        },
        "/v1/orders/{id}/cancel": {
            "post": {
                "operationId": "cancelOrder",
                "summary": "Cancel the order (until the service has started, and as its "
                "category allows).",
                "parameters": [ORDER_ID],
                "responses": _responses(
                    {200: "The cancelled order."}, {**found, 409: ("not_cancellable",)}
                ),
            }
        },
        "/v1/orders/{id}/rating": {
            "post": {
                "operationId": "rateOrder",
                "summary": "Rate the completed order, 1 to 5 stars, once.",
                "parameters": [ORDER_ID],
                "requestBody": _body("RateOrder"),
                "responses": _responses(
                    {200: "The order, with its rating."},
                    _reading({400: BODY_ERRORS, **found, 409: ("not_rateable", "already_rated")}),
                ),
            }
        },
        "/v1/orders/{id}/tip": {
            "post": {
                "operationId": "tipOrder",
                "summary": "Tip the completed order's worker, once (minor units of its quote).",
                "parameters": [ORDER_ID],
                "requestBody": _body("TipOrder"),
                "responses": _responses(
                    {200: "The order, with its tip."},
                    _reading({400: BODY_ERRORS, **found, 409: ("not_tippable", "already_tipped")}),
                ),
            }
        },
        "/v1/orders/{id}/steps/{step}": {
            "post": {
                "operationId": "doStep",
                "summary": "Do the order's pending step when it is the customer's (an approval).",
                "parameters": [ORDER_ID, STEP],
                "requestBody": _body("DoStep", required=False),
                "responses": _responses({200: "The order after the step."}, STEP_ERRORS),
            }
        },
    }


def _admin_paths() -> JSON:
    missing = {404: ("category_not_found",)}
    categories = {
        "get": {
            "operationId": "listCategories",
            "summary": "Every category, retired ones included.",
            "security": ADMIN,
            "responses": _responses({200: "The categories."}, {}, "CategoryList"),
        }
    }
    one = {
        "get": {
            "operationId": "getCategory",
            "summary": "The category in force, or one of its last versions (`?version=N`).",
            "security": ADMIN,
            "parameters": [
                KEY,
                {
                    "name": "version",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1},
                },
            ],
            "responses": _responses(
                {200: "The category."}, {**missing, 400: ("invalid_field",)}, "Category"
            ),
        },
        "put": {
            "operationId": "putCategory",
            "summary": "Check a definition completely, then store it as the next version.",
            "security": ADMIN,
            "parameters": [KEY],
            "requestBody": _body("CategoryDefinition", toml=True),
            "responses": _responses(
                {200: "The next version, or no change.", 201: "A new category."},
                _reading({400: (*BODY_ERRORS, "invalid_category")}),
                "CategoryApplied",
            ),
        },
    }

    def flag(op: str, summary: str) -> JSON:
        return {"post": {"operationId": op, "summary": summary, "security": ADMIN,
                         "parameters": [KEY],
                         "responses": _responses({200: "The category now."}, missing,
                                                 "CategoryApplied")}}  # fmt: skip

    found = {404: ("order_not_found",)}
    return {
        "/v1/admin/categories": categories,
        "/v1/admin/categories/{key}": one,
        "/v1/admin/categories/{key}/retire": flag("retireCategory", "Take no new orders."),
        "/v1/admin/categories/{key}/restore": flag("restoreCategory", "Take orders again."),
        "/v1/admin/orders/{id}": {"get": {
            "operationId": "adminGetOrder", "summary": "Any customer's order.",
            "security": ADMIN, "parameters": [ORDER_ID],
            "responses": _responses({200: "The order."}, found),
        }},
        "/v1/admin/orders/{id}/steps/{step}": {"post": {
            "operationId": "forceStep", "summary": "Do the pending step, whoever's it is.",
            "security": ADMIN, "parameters": [ORDER_ID, STEP],
            "requestBody": _body("DoStep", required=False),
            "responses": _responses({200: "The order after the step."}, STEP_ERRORS),
        }},
        **_webhook_paths(),
        **_override_paths(),
        "/v1/admin/orders/{id}/cancel": {"post": {
            "operationId": "forceCancel", "summary": "Cancel an order that has not ended.",
            "security": ADMIN, "parameters": [ORDER_ID],
            "responses": _responses({200: "The cancelled order."},
                                    {**found, 409: ("not_cancellable",)}),
        }},
    }  # fmt: skip


def _override_paths() -> JSON:
    city, worker = CITY, WORKER
    found = {404: ("order_not_found",)}

    def order_op(op: str, summary: str, body: JSON, conflict: str) -> JSON:
        return {"post": {
            "operationId": op, "summary": summary, "security": ADMIN, "parameters": [ORDER_ID],
            "requestBody": body,
            "responses": _responses({200: "The order after it."},
                                    _reading({400: BODY_ERRORS, **found, 409: (conflict,)})),
        }}  # fmt: skip

    def worker_op(op: str, summary: str, body: JSON | None, *conflicts: str) -> JSON:
        errors: dict[int, tuple[str, ...]] = {400: (*BODY_ERRORS, "unknown_city")}
        if conflicts:
            errors[409] = conflicts
        spec: JSON = {
            "operationId": op,
            "summary": summary,
            "security": ADMIN,
            "parameters": [city, worker],
            "responses": _responses(
                {200: "The worker now."}, _reading(errors) if body else errors, "WorkerStanding"
            ),
        }
        if body:
            spec["requestBody"] = body
        return {"post": spec}

    w = "/v1/admin/workers/{city}/{worker_id}"
    return {
        "/v1/admin/orders/{id}/reassign": order_op(
            "reassignOrder", "Take the order from whoever has it and dispatch it again.",
            _body("Reassign", required=False), "not_reassignable"),
        "/v1/admin/orders/{id}/extend": order_op(
            "extendOrder", "Move the deadline the order waits on.", _body("Extend"),
            "not_extendable"),
        w: {"get": {"operationId": "getWorker", "summary": "A worker as operators see it.",
                    "security": ADMIN, "parameters": [city, worker],
                    "responses": _responses({200: "The worker."}, WORKER_ERRORS,
                                            "WorkerStanding")}},
        f"{w}/pause": worker_op("pauseWorker", "No offers for a while.", _body("Pause")),
        f"{w}/resume": worker_op("resumeWorker", "Lift a pause.", None, "not_held"),
        f"{w}/block": worker_op("blockWorker", "No offers (and no connection, unless "
                                "for one customer only; no body: for every customer).",
                                _body("Block", required=False)),
        f"{w}/unblock": worker_op("unblockWorker", "Lift a block (no body: the block for "
                                  "every customer).", _body("Block", required=False),
                                  "not_held"),
        f"{w}/waive": worker_op("waiveHandBack", "A job the worker handed back counts "
                                "against it no more.", _body("Waive"), "not_waivable"),
        f"{w}/earnings": {"get": {
            "operationId": "getWorkerEarnings",
            "summary": "What the worker earned today and this week, and its newest entries.",
            "security": ADMIN, "parameters": [city, worker],
            "responses": _responses({200: "The worker's earnings."}, WORKER_ERRORS,
                                    "EarningsReport")}},
        "/v1/admin/payouts": {"get": {
            "operationId": "getPayouts",
            "summary": "What each worker of a city earned over whole UTC days, by currency.",
            "security": ADMIN,
            "description": f"The period is whole UTC days `from` to `to`, both included: "
                           f"`from` not after `to`, `to` not after today, and `from` within "
                           f"the last {LEDGER_DAYS} days the day books keep (else 400 "
                           f"`out_of_range`, or `invalid_field` when `from` is after `to`).",
            "parameters": [_query("city", "The city.", {"type": "string", "pattern": ids.NAME}),
                           _query("from", "The period's first day.", DATE),
                           _query("to", "The period's last day, included.", DATE)],
            "responses": _responses(
                {200: "The payouts, by worker."},
                {400: ("unknown_city", "missing_field", "invalid_field", "out_of_range")},
                "Payouts")}},
    }  # fmt: skip


def _webhook_paths() -> JSON:
    sub_id = SUBSCRIPTION
    missing = {404: ("subscription_not_found",)}
    limit = {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}  # fmt: skip

    def read(
        op: str,
        summary: str,
        body: str,
        params: list[JSON],
        errors: Mapping[int, tuple[str, ...]] = missing,
    ) -> JSON:
        return {"get": {"operationId": op, "summary": summary, "security": ADMIN,
                        "parameters": params,
                        "responses": _responses({200: summary}, errors, body)}}  # fmt: skip

    limited = {**missing, 400: ("invalid_field", "out_of_range")}

    one = read("getWebhook", "The subscription.", "Subscription", [sub_id])
    one["delete"] = {"operationId": "deleteWebhook", "summary": "End the subscription.",
                     "security": ADMIN, "parameters": [sub_id],
                     "responses": {"204": {"description": "Deleted."},
                                   **_responses({}, missing)}}  # fmt: skip
    return {
        "/v1/admin/webhooks": {
            "get": {"operationId": "listWebhooks", "summary": "Every subscription.",
                    "security": ADMIN,
                    "responses": _responses({200: "The subscriptions."}, {},
                                            "SubscriptionList")},
            "post": {"operationId": "createWebhook", "summary": "Subscribe a URL to events.",
                     "security": ADMIN, "requestBody": _body("NewSubscription"),
                     "responses": _responses({201: "The subscription, with its secret."},
                                             _reading({400: BODY_ERRORS}), "Subscription")},
        },
        "/v1/admin/webhooks/{id}": one,
        "/v1/admin/webhooks/{id}/enable": {"post": {
            "operationId": "enableWebhook", "summary": "Turn a disabled subscription on.",
            "security": ADMIN, "parameters": [sub_id],
            "responses": _responses({200: "The subscription."}, missing, "Subscription")}},
        "/v1/admin/webhooks/{id}/deliveries": read(
            "webhookDeliveries", "The latest delivery attempts.", "DeliveryLog", [sub_id, limit],
            limited),
        "/v1/admin/webhooks/{id}/dead": read(
            "webhookDeadLetters", "The messages given up on.", "DeadLetters", [sub_id, limit],
            limited),
    }  # fmt: skip


def _open(op: str, summary: str, responses: JSON) -> JSON:
    """An operation that needs no token."""
    return {"get": {"operationId": op, "summary": summary, "security": [],
                    "responses": responses}}  # fmt: skip


def _json(description: str, schema: JSON) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _node_paths() -> JSON:
    """The node's own routes: liveness, readiness, counters and this document."""
    counters = {"type": "object", "additionalProperties": {"type": "number"},
                "description": "The node's counters by name."}  # fmt: skip
    return {
        "/healthz": _open("health", "Liveness of the node that answers.",
                          {"200": _json("The node is up.", _ref("Health"))}),
        "/readyz": _open("ready", "Readiness: the node can do its work (its store answers, "
                         "pub/sub is subscribed, every loop runs, it is not shutting down).",
                         {"200": _json("Ready.", _ref("Ready")),
                          "503": _json("Not ready, with the reasons.", _ref("Ready"))}),
        "/metrics": {"get": {
            "operationId": "metrics",
            "summary": "The node's figures, in Prometheus's text format, or as one JSON "
                       "object when `Accept` names `application/json`.",
            "security": [{"metrics": []}],
            "responses": {
                "200": {"description": "The figures.", "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {"schema": counters}}},
                "401": _error_response(401, ("unauthorized",)),
                "404": {**_error_response(404, ("not_found",)),
                        "description": "Not Found: the node has no metrics token configured "
                                       "(as for any unknown path)."},
            },
        }},
        "/openapi.json": _open("openapi", "This document.",
                               {"200": _json("The OpenAPI document.", {"type": "object"})}),
    }  # fmt: skip


HEALTH: JSON = {
    "title": "Health",
    "type": "object",
    "properties": {
        "status": {"enum": ["ok"]},
        "node": {"type": "string", "description": "The answering node's id."},
    },
    "required": ["status", "node"],
}
READY: JSON = {
    "title": "Ready",
    "type": "object",
    "properties": {
        "status": {"enum": ["ready", "not_ready"]},
        "node": {"type": "string", "description": "The answering node's id."},
        "problems": {"type": "array", "items": {"type": "string"},
                     "description": "When not ready: why, for people."},
    },
    "required": ["status", "node"],
}  # fmt: skip


def _worker_paths() -> JSON:
    return {
        "/v1/worker/figures": {"get": {
            "operationId": "getWorkerFigures",
            "summary": "The worker's own figures over the last 7 and 30 days.",
            "security": [{"worker": []}],
            "responses": _responses({200: "The worker's figures."}, {}, "Figures"),
        }},
        "/v1/worker/earnings": {"get": {
            "operationId": "getWorkerEarnings",
            "summary": "What the worker earned today and this week, and its newest entries.",
            "security": [{"worker": []}],
            "responses": _responses({200: "The worker's earnings."}, {}, "EarningsReport"),
        }},
    }  # fmt: skip


def _bearer(role: str) -> JSON:
    return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": f"HS256 JWT with `role` = `{role}`."}  # fmt: skip


# What a created thing's answer links to (a client, or schemathesis's stateful
# phase, follows them): (operation, status) -> (parameter, where its value is, targets).
LINKS: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("createOrder", "201"): ("id", "$response.body#/id", (
        "getOrder", "cancelOrder", "rateOrder", "tipOrder", "adminGetOrder", "forceCancel",
        "reassignOrder", "extendOrder")),
    ("putCategory", "201"): ("key", "$response.body#/category/definition/key", (
        "getCategory", "retireCategory", "restoreCategory")),
    ("createWebhook", "201"): ("id", "$response.body#/id", (
        "getWebhook", "deleteWebhook", "enableWebhook", "webhookDeliveries",
        "webhookDeadLetters")),
}  # fmt: skip


def _linked(paths: JSON) -> JSON:
    """``paths`` with the :data:`LINKS` added to the responses they start from."""
    ops = {op["operationId"]: op for item in paths.values() for op in item.values()}
    for (source, status), (param, value, targets) in LINKS.items():
        ops[source]["responses"][status]["links"] = {
            target[0].upper() + target[1:]: {"operationId": target, "parameters": {param: value}}
            for target in targets
        }
    return paths


def openapi() -> JSON:
    """The OpenAPI 3.1 document of the HTTP endpoints."""
    _, schemas = _components(HTTP_BODIES, COMPONENT_REF)
    return {
        "openapi": "3.1.0",
        "info": _info("Dispatch HTTP API", "Customers create, read and cancel orders and do "
                      "their workflow steps; operators manage categories and step in. " + DOCS),
        "servers": [{"url": "http://localhost:8000", "description": "A node on a laptop."}],
        "security": [{"bearer": []}],
        "paths": _linked({**_customer_paths(), **_worker_paths(), **_admin_paths(),
                          **_node_paths()}),
        "components": {
            "schemas": {**schemas, "Health": HEALTH, "Ready": READY},
            "securitySchemes": {"bearer": _bearer("customer"), "worker": _bearer("worker"),
                                "admin": _bearer("admin"),
                                "metrics": {"type": "http", "scheme": "bearer",
                                            "description": "The node's `metrics_token`."}},
        },
    }  # fmt: skip
