"""The ``Origin`` check of WebSocket handshakes.

Browsers send ``Origin`` with every WebSocket handshake and let any page open
a socket to any host, so a deployment serving web clients lists the origins
it trusts (``allowed_origins``). Native apps send no ``Origin``; they are
never refused for it. An empty list allows every origin.
"""

from __future__ import annotations

from collections.abc import Collection


def origin_allowed(origin: str | None, allowed: Collection[str]) -> bool:
    """Whether a handshake with this ``Origin`` header may open a socket."""
    return not allowed or origin is None or origin in allowed
