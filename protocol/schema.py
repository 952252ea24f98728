"""Machine-readable descriptions of the wire format, generated from the Structs.

Responsible for the files in ``protocol/schema/``:

- ``messages.schema.json``: a JSON Schema (2020-12) of every frame and HTTP body;
- ``asyncapi.json``: an AsyncAPI 3.0 document of the two WebSocket channels;
- ``openapi.json``: an OpenAPI 3.1 document of the HTTP endpoints (built in
  ``protocol/openapi.py``).

Every schema comes from :mod:`protocol.messages` (and
:mod:`protocol.catalogue`) through
:func:`msgspec.json.schema_components`, so the files only drift when someone
forgets to regenerate them, and ``tests/test_protocol.py`` catches that. This
module imports nothing from ``server`` or ``simulator``.

Run ``python -m protocol.schema`` after changing a message; with ``--check`` it
writes nothing, names the stale files and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
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

SCHEMA_DIR = Path(__file__).parent / "schema"
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


# ---------------------------------------------------------------- AsyncAPI 3.0


def _message(cls: type[msgspec.Struct]) -> JSON:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return {
        "name": tag(cls),
        "title": cls.__name__,
        "summary": doc.split("\n\n")[0].replace("\n", " "),
        "contentType": "application/json",
        "payload": _ref(cls.__name__),
    }


def _channel_messages(*unions: Any) -> JSON:
    classes = {cls.__name__: cls for union in unions for cls in members(union)}
    return {name: {"$ref": f"#/components/messages/{name}"} for name in classes}


def _ws_binding(query: JSON) -> JSON:
    header = {
        "type": "string",
        "pattern": "^Bearer .+$",
        "description": "`Bearer <JWT>`; the alternative to the `token` query parameter.",
    }
    return {
        "ws": {
            "bindingVersion": "0.1.0",
            "method": "GET",
            "query": {"type": "object", "properties": query},
            "headers": {"type": "object", "properties": {"Authorization": header}},
        }
    }


TOKEN_QUERY: JSON = {"type": "string", "description": "The JWT, if not sent as a header."}


def _channels() -> JSON:
    after = {
        "type": "string",
        "description": "Resume: only events after this event id are sent in the snapshot.",
    }
    return {
        "worker": {
            "address": "/v1/worker",
            "title": "Worker session",
            "description": "One socket per worker app. The first frame must be `hello`; "
            "the server answers `welcome`. A worker token may come in the handshake "
            "(header or `token` query) or in `hello.token`.",
            "messages": _channel_messages(WorkerMessage, ServerMessage),
            "bindings": _ws_binding({"token": TOKEN_QUERY}),
        },
        "orderLive": {
            "address": "/v1/orders/{id}/live",
            "title": "Live order",
            "description": "A customer follows one of its orders: `snapshot` first, then "
            "`event` and `position` frames; closed with code 1000 after the terminal event.",
            "parameters": {"id": {"description": "The order id from `POST /v1/orders`."}},
            "messages": _channel_messages(LiveMessage),
            "bindings": _ws_binding({"token": TOKEN_QUERY, "after": after}),
        },
    }


def _operation(action: str, channel: str, union: Any, summary: str) -> JSON:
    refs = [{"$ref": f"#/channels/{channel}/messages/{cls.__name__}"} for cls in members(union)]
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": refs,
    }


def _ws_security_schemes() -> JSON:
    return {
        "bearerHeader": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "HS256 JWT in the `Authorization` header of the handshake.",
        },
        "tokenQuery": {
            "type": "httpApiKey",
            "name": "token",
            "in": "query",
            "description": "The same JWT as the `token` query parameter.",
        },
    }


def asyncapi() -> JSON:
    """The AsyncAPI 3.0 document of the WebSocket channels, from the server's side."""
    classes = {cls for union in UNIONS.values() for cls in members(union)}
    ordered = sorted(classes, key=lambda cls: cls.__name__)
    _, schemas = _components(ordered, COMPONENT_REF)
    security = [
        {"$ref": "#/components/securitySchemes/bearerHeader"},
        {"$ref": "#/components/securitySchemes/tokenQuery"},
    ]
    description = (
        "The dispatch server's WebSocket channels. Operations are the server's: it "
        "receives worker frames and sends server and live frames. " + DOCS
    )
    return {
        "asyncapi": "3.0.0",
        "info": _info("Dispatch WebSocket protocol", description),
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8000",
                "protocol": "ws",
                "description": "A node on a laptop; use `wss` behind TLS in production.",
                "security": security,
            }
        },
        "channels": _channels(),
        "operations": {
            "receiveWorkerFrames": _operation(
                "receive", "worker", WorkerMessage, "Frames a worker app sends."
            ),
            "sendServerFrames": _operation(
                "send", "worker", ServerMessage, "Frames the server sends a worker app."
            ),
            "sendLiveFrames": _operation(
                "send", "orderLive", LiveMessage, "Frames the server sends a customer."
            ),
        },
        "components": {
            "schemas": schemas,
            "messages": {cls.__name__: _message(cls) for cls in ordered},
            "securitySchemes": _ws_security_schemes(),
        },
    }


# ---------------------------------------------------------------- files and CLI


def render() -> dict[str, str]:
    """Every generated file's name (in ``protocol/schema/``) and its text."""
    from protocol.openapi import openapi  # it builds on this module's helpers

    documents = {
        "messages.schema.json": json_schema(),
        "asyncapi.json": asyncapi(),
        "openapi.json": openapi(),
    }
    return {
        name: json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, doc in documents.items()
    }


def stale_files(directory: Path = SCHEMA_DIR) -> list[Path]:
    """The files in ``directory`` that are missing or differ from :func:`render`."""
    stale = []
    for name, text in render().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the schema files; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m protocol.schema", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (run `python -m protocol.schema`)", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
