"""The JSON Schema of the wire format, and the pieces every generated document shares.

Every schema comes from :mod:`protocol.messages` (and
:mod:`protocol.catalogue`, :mod:`protocol.webhooks`, :mod:`protocol.admin`)
through :func:`msgspec.json.schema_components`: :data:`UNIONS` are the
tagged unions of the WebSocket frames, :data:`HTTP_BODIES` the HTTP bodies,
and :func:`json_schema` is ``messages.schema.json``. The AsyncAPI and
OpenAPI documents (``protocol/asyncapi.py``, ``protocol/openapi.py``) build
on :func:`_components`, :func:`_ref` and :func:`_info`; ``protocol/schema.py``
writes them all. Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, get_args

import msgspec

from protocol.admin import Block, Cities, Extend, Pause, Payouts, Reassign, Waive, WorkerStanding
from protocol.catalogue import Category, CategoryApplied, CategoryDefinition, CategoryList
from protocol.messages import (
    PROTOCOL_VERSION,
    CreateOrder,
    DoStep,
    EarningsReport,
    Figures,
    HttpError,
    LiveMessage,
    OrderView,
    RateOrder,
    ServerMessage,
    TipOrder,
    WorkerMessage,
)
from protocol.webhooks import (
    DeadLetters,
    DeliveryLog,
    NewSubscription,
    OrderHappened,
    Subscription,
    SubscriptionList,
    WorkerHappened,
)

JSON = dict[str, Any]

UNIONS: dict[str, Any] = {
    "WorkerMessage": WorkerMessage,
    "ServerMessage": ServerMessage,
    "LiveMessage": LiveMessage,
}
HTTP_BODIES: tuple[type[msgspec.Struct], ...] = (
    CreateOrder,
    OrderView,
    HttpError,
    DoStep,
    CategoryDefinition,
    Category,
    CategoryList,
    CategoryApplied,
    NewSubscription,
    Subscription,
    SubscriptionList,
    DeliveryLog,
    DeadLetters,
    OrderHappened,
    WorkerHappened,
    Reassign,
    Extend,
    Pause,
    Block,
    Waive,
    WorkerStanding,
    RateOrder,
    TipOrder,
    Figures,
    EarningsReport,
    Payouts,
    Cities,
)
COMPONENT_REF = "#/components/schemas/{name}"
DOCS = "See protocol/PROTOCOL.md for the rules behind these shapes."


def members(union: Any) -> tuple[type[msgspec.Struct], ...]:
    """The message classes of one of the tagged unions, in declaration order."""
    return get_args(union)


def tag(cls: type[msgspec.Struct]) -> str:
    """The ``type`` tag of a tagged message class."""
    value = cls.__struct_config__.tag
    if not isinstance(value, str):
        raise TypeError(f"{cls.__name__} has no string tag")
    return value


# Rules across fields that a Struct's types cannot say, added to its schema.
RULES: dict[str, JSON] = {
    # CreateOrder: a category or a bare skill, exactly one of the two (not null)
    "CreateOrder": {
        "oneOf": [
            {"required": ["category"],
             "properties": {"category": {"type": "string"}, "skill": {"type": "null"}}},
            {"required": ["skill"],
             "properties": {"skill": {"type": "string"}, "category": {"type": "null"}}},
        ]
    },
}  # fmt: skip


def _components(types: Iterable[Any], ref_template: str) -> tuple[list[JSON], dict[str, JSON]]:
    """msgspec's schemas for ``types`` and their components, with docstrings dedented
    and the :data:`RULES` across fields added."""
    schemas, components = msgspec.json.schema_components(types, ref_template=ref_template)
    for name, schema in components.items():
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
        schema.update(RULES.get(name, {}))
    return list(schemas), components


def _ref(name: str, template: str = COMPONENT_REF) -> JSON:
    return {"$ref": template.format(name=name)}


def _info(title: str, description: str) -> JSON:
    return {"title": title, "version": str(PROTOCOL_VERSION), "description": description}


def json_schema() -> JSON:
    """One JSON Schema whose ``$defs`` hold every frame, union and HTTP body."""
    template = "#/$defs/{name}"
    schemas, defs = _components([*UNIONS.values(), *HTTP_BODIES], template)
    defs.update(zip(UNIONS, schemas[: len(UNIONS)], strict=True))
    names = [*UNIONS, *(cls.__name__ for cls in HTTP_BODIES)]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Dispatch protocol messages",
        "description": "Any frame or HTTP body of the dispatch protocol. " + DOCS,
        "anyOf": [_ref(name, template) for name in names],
        "$defs": defs,
    }
