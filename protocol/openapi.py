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

from protocol.errors import ERROR_CODES
from protocol.schema import COMPONENT_REF, DOCS, HTTP_BODIES, _components, _info, _ref

JSON = dict[str, Any]

COMMON_ERRORS: dict[int, tuple[str, ...]] = {
    401: ("unauthorized",),
    403: ("forbidden",),
    500: ("internal",),
    503: ("unavailable",),
}
BODY_ERRORS = ("bad_json", "missing_field", "invalid_field", "out_of_range", "bad_request")
STEP_ERRORS: dict[int, tuple[str, ...]] = {
    400: (*BODY_ERRORS, "invalid_step_data"),
    403: ("forbidden", "not_your_step"),
    404: ("order_not_found",),
    409: ("illegal_step",),
}


def _error_response(status: int, codes: tuple[str, ...]) -> JSON:
    meanings = " ".join(f"`{code}`: {ERROR_CODES[code]}" for code in codes)
    examples = {code: {"value": {"code": code, "message": ERROR_CODES[code]}} for code in codes}
    return {
        "description": f"{HTTPStatus(status).phrase}. {meanings}",
        "content": {"application/json": {"schema": _ref("HttpError"), "examples": examples}},
    }


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


def _path(name: str, description: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}  # fmt: skip


def _query(name: str, description: str, schema: JSON) -> JSON:
    return {"name": name, "in": "query", "required": True, "description": description,
            "schema": schema}  # fmt: skip


DATE: JSON = {"type": "string", "format": "date"}
ORDER_ID = _path("id", "The order id (opaque, e.g. `berlin.7f3k9q2x`).")
STEP = _path("step", "The step's name, as in the order's `steps` (e.g. `approve_large_dog`).")
KEY = _path("key", "The category's key, e.g. `pet-grooming`.")
ADMIN: list[JSON] = [{"admin": []}]


def _idempotency_key() -> JSON:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "1-64 printable ASCII characters, one key per order the customer means "
        "to create. "
        "Repeating the key with the same body returns the same order (200); with a "
        "different body, 409 `idempotency_conflict`. A request refused with 400 or 429 "
        "binds nothing: the key stays free for the corrected request.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[ -~]{1,64}$"},
    }


def _body(name: str, toml: bool = False) -> JSON:
    content: JSON = {"application/json": {"schema": _ref(name)}}
    if toml:
        content["application/toml"] = {"schema": _ref(name)}
    return {"required": True, "content": content}


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
            {
                400: (*BODY_ERRORS, "unknown_city", "unknown_category", "invalid_attributes"),
                409: ("idempotency_conflict", "category_retired"),
            },
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
                    {400: BODY_ERRORS, **found, 409: ("not_rateable", "already_rated")},
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
                    {400: BODY_ERRORS, **found, 409: ("not_tippable", "already_tipped")},
                ),
            }
        },
        "/v1/orders/{id}/steps/{step}": {
            "post": {
                "operationId": "doStep",
                "summary": "Do the order's pending step when it is the customer's (an approval).",
                "parameters": [ORDER_ID, STEP],
                "requestBody": _body("DoStep"),
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
            "responses": _responses({200: "The category."}, missing, "Category"),
        },
        "put": {
            "operationId": "putCategory",
            "summary": "Check a definition completely, then store it as the next version.",
            "security": ADMIN,
            "parameters": [KEY],
            "requestBody": _body("CategoryDefinition", toml=True),
            "responses": _responses(
                {200: "The next version, or no change.", 201: "A new category."},
                {400: (*BODY_ERRORS, "invalid_category")},
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
            "security": ADMIN, "parameters": [ORDER_ID, STEP], "requestBody": _body("DoStep"),
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
    city = _path("city", "The worker's city, e.g. `berlin`.")
    worker = _path("worker_id", "The worker's id (its token's `sub`).")
    found = {404: ("order_not_found",)}

    def order_op(op: str, summary: str, body: str | None, conflict: str) -> JSON:
        spec: JSON = {
            "operationId": op,
            "summary": summary,
            "security": ADMIN,
            "parameters": [ORDER_ID],
            "responses": _responses(
                {200: "The order after it."}, {400: BODY_ERRORS, **found, 409: (conflict,)}
            ),
        }
        if body:
            spec["requestBody"] = _body(body)
        return {"post": spec}

    def worker_op(op: str, summary: str, body: str | None, *conflicts: str) -> JSON:
        errors: dict[int, tuple[str, ...]] = {400: (*BODY_ERRORS, "unknown_city")}
        if conflicts:
            errors[409] = conflicts
        spec: JSON = {
            "operationId": op,
            "summary": summary,
            "security": ADMIN,
            "parameters": [city, worker],
            "responses": _responses({200: "The worker now."}, errors, "WorkerStanding"),
        }
        if body:
            spec["requestBody"] = _body(body)
        return {"post": spec}

    w = "/v1/admin/workers/{city}/{worker_id}"
    return {
        "/v1/admin/orders/{id}/reassign": order_op(
            "reassignOrder", "Take the order from whoever has it and dispatch it again.",
            "Reassign", "not_reassignable"),
        "/v1/admin/orders/{id}/extend": order_op(
            "extendOrder", "Move the deadline the order waits on.", "Extend", "not_extendable"),
        w: {"get": {"operationId": "getWorker", "summary": "A worker as operators see it.",
                    "security": ADMIN, "parameters": [city, worker],
                    "responses": _responses({200: "The worker."}, {400: ("unknown_city",)},
                                            "WorkerStanding")}},
        f"{w}/pause": worker_op("pauseWorker", "No offers for a while.", "Pause"),
        f"{w}/resume": worker_op("resumeWorker", "Lift a pause.", None, "not_held"),
        f"{w}/block": worker_op("blockWorker", "No offers (and no connection, unless "
                                "for one customer only).", "Block"),
        f"{w}/unblock": worker_op("unblockWorker", "Lift a block.", "Block", "not_held"),
        f"{w}/waive": worker_op("waiveHandBack", "A job the worker handed back counts "
                                "against it no more.", "Waive", "not_waivable"),
        f"{w}/earnings": {"get": {
            "operationId": "getWorkerEarnings",
            "summary": "What the worker earned today and this week, and its newest entries.",
            "security": ADMIN, "parameters": [city, worker],
            "responses": _responses({200: "The worker's earnings."}, {400: ("unknown_city",)},
                                    "EarningsReport")}},
        "/v1/admin/cities": {"get": {
            "operationId": "getCities", "summary": "The cities this deployment serves.",
            "security": ADMIN,
            "responses": _responses({200: "The cities, as the `cities` setting names them."},
                                    {}, "Cities")}},
        "/v1/admin/payouts": {"get": {
            "operationId": "getPayouts",
            "summary": "What each worker of a city earned over whole UTC days, by currency.",
            "security": ADMIN,
            "parameters": [_query("city", "The city.", {"type": "string"}),
                           _query("from", "The period's first day.", DATE),
                           _query("to", "The period's last day, included.", DATE)],
            "responses": _responses(
                {200: "The payouts, by worker."},
                {400: ("unknown_city", "missing_field", "invalid_field", "out_of_range")},
                "Payouts")}},
    }  # fmt: skip


def _webhook_paths() -> JSON:
    sub_id = _path("id", "The subscription's id (`sub_...`).")
    missing = {404: ("subscription_not_found",)}
    limit = {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}  # fmt: skip

    def read(op: str, summary: str, body: str, params: list[JSON]) -> JSON:
        return {"get": {"operationId": op, "summary": summary, "security": ADMIN,
                        "parameters": params,
                        "responses": _responses({200: summary}, missing, body)}}  # fmt: skip

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
                                             {400: BODY_ERRORS}, "Subscription")},
        },
        "/v1/admin/webhooks/{id}": one,
        "/v1/admin/webhooks/{id}/enable": {"post": {
            "operationId": "enableWebhook", "summary": "Turn a disabled subscription on.",
            "security": ADMIN, "parameters": [sub_id],
            "responses": _responses({200: "The subscription."}, missing, "Subscription")}},
        "/v1/admin/webhooks/{id}/deliveries": read(
            "webhookDeliveries", "The latest delivery attempts.", "DeliveryLog", [sub_id, limit]),
        "/v1/admin/webhooks/{id}/dead": read(
            "webhookDeadLetters", "The messages given up on.", "DeadLetters", [sub_id, limit]),
    }  # fmt: skip


def _healthz() -> JSON:
    return {
        "operationId": "health",
        "summary": "Liveness of the node that answers.",
        "security": [],
        "responses": {
            "200": {
                "description": "The node is up.",
                "content": {"application/json": {"schema": _ref("Health")}},
            }
        },
    }


HEALTH: JSON = {
    "title": "Health",
    "type": "object",
    "properties": {
        "status": {"enum": ["ok"]},
        "node": {"type": "string", "description": "The answering node's id."},
    },
    "required": ["status", "node"],
}


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


def openapi() -> JSON:
    """The OpenAPI 3.1 document of the HTTP endpoints."""
    _, schemas = _components(HTTP_BODIES, COMPONENT_REF)
    return {
        "openapi": "3.1.0",
        "info": _info("Dispatch HTTP API", "Customers create, read and cancel orders and do "
                      "their workflow steps; operators manage categories and step in. " + DOCS),
        "servers": [{"url": "http://localhost:8000", "description": "A node on a laptop."}],
        "security": [{"bearer": []}],
        "paths": {**_customer_paths(), **_worker_paths(), **_admin_paths(),
                  "/healthz": {"get": _healthz()}},
        "components": {
            "schemas": {**schemas, "Health": HEALTH},
            "securitySchemes": {"bearer": _bearer("customer"), "worker": _bearer("worker"),
                                "admin": _bearer("admin")},
        },
    }  # fmt: skip
