"""The admin API's paths in the OpenAPI document: categories, orders, workers'
overrides and earnings, payouts and webhooks, each with an ``admin`` token.

Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol import ids
from protocol.openapi_parts import (
    ADMIN,
    BODY_ERRORS,
    CITY,
    DATE,
    JSON,
    KEY,
    LEDGER_DAYS,
    ORDER_ID,
    STEP,
    STEP_ERRORS,
    SUBSCRIPTION,
    WORKER,
    WORKER_ERRORS,
    _body,
    _query,
    _reading,
    _responses,
)


def admin_paths() -> JSON:
    """Every path of the admin API."""
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
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                },
            ],
            "responses": _responses(
                {200: "The category."},
                {**missing, 400: ("invalid_field", "out_of_range")},
                "Category",
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
        "/v1/admin/cities": {"get": {
            "operationId": "getCities", "summary": "The cities this deployment serves.",
            "security": ADMIN,
            "responses": _responses({200: "The cities, as the `cities` setting names them."},
                                    {}, "Cities")}},
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
