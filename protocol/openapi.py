"""The OpenAPI 3.1 document of the HTTP endpoints: the customers' orders and
the operators' admin API, from the Structs (``protocol/schema/openapi.json``).

Built on :mod:`protocol.json_schema`'s pieces, so every body's schema comes from
its Struct; the statuses and codes are those of ``PROTOCOL.md`` §12, §14 and
§19. The admin API's paths are in :mod:`protocol.openapi_admin`, the pieces
both are built of in :mod:`protocol.openapi_parts`. Imports nothing from
``server`` or ``simulator``.
"""

from __future__ import annotations

from protocol.json_schema import COMPONENT_REF, DOCS, HTTP_BODIES, _components, _info, _ref
from protocol.openapi_admin import admin_paths
from protocol.openapi_parts import (
    BODY_ERRORS,
    JSON,
    ORDER_ID,
    STEP,
    STEP_ERRORS,
    _body,
    _error_response,
    _idempotency_key,
    _reading,
    _responses,
)


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
        "paths": _linked({**_customer_paths(), **_worker_paths(), **admin_paths(),
                          **_node_paths()}),
        "components": {
            "schemas": {**schemas, "Health": HEALTH, "Ready": READY},
            "securitySchemes": {"bearer": _bearer("customer"), "worker": _bearer("worker"),
                                "admin": _bearer("admin"),
                                "metrics": {"type": "http", "scheme": "bearer",
                                            "description": "The node's `metrics_token`."}},
        },
    }  # fmt: skip
