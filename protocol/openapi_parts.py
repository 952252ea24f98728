"""The pieces the OpenAPI document is built of: error answers with their codes,
path and query parameters with their patterns, request bodies, and the error
sets shared by many operations (``protocol/openapi.py`` puts them together).

Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from protocol import ids
from protocol.errors import ERROR_CODES
from protocol.json_schema import _ref
from protocol.messages import FIELD

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
        "different body, 409 `idempotency_conflict`. A request refused with 400 or 429 "
        "binds nothing: the key stays free for the corrected request.",
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
