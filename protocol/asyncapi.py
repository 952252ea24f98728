"""The AsyncAPI 3.0 document of the two WebSocket channels (``asyncapi.json``).

Built on :mod:`protocol.json_schema`'s pieces, so every frame's schema comes
from its Struct; ``protocol/schema.py`` writes it. Imports nothing from
``server`` or ``simulator``.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from protocol.json_schema import (
    COMPONENT_REF,
    DOCS,
    JSON,
    UNIONS,
    _components,
    _info,
    _ref,
    members,
    tag,
)
from protocol.messages import LiveMessage, ServerMessage, WorkerMessage


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
