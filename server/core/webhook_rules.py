"""Webhook rules: which subscription wants an event, when a failed delivery
is tried again, and the Standard Webhooks signature. Pure: the time comes in
as an argument; no I/O.

Retries follow the schedule Standard Webhooks' reference implementation
uses (immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), each
wait multiplied by ``scale`` (a setting, so that tests run it in
milliseconds); after the last attempt the message is a dead letter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

__all__ = ["RETRY_DELAYS_S", "matches", "next_delay_ms", "sign", "signature_header"]

RETRY_DELAYS_S: Final[tuple[float, ...]] = (5, 300, 1800, 7200, 18000, 36000, 36000)
SECRET_PREFIX: Final = "whsec_"


def matches(patterns: Sequence[str], categories: Sequence[str], etype: str,
            category: str | None) -> bool:  # fmt: skip
    """Whether a subscription to ``patterns`` (``order.assigned``, ``order.*``,
    ``*``) and ``categories`` (empty: all) wants an event of ``etype``. A
    worker event has no category: it matches only a subscription to all."""
    kind = etype.partition(".")[0]
    wanted = any(p in ("*", etype, f"{kind}.*") for p in patterns)
    return wanted and (not categories or category in categories)


def next_delay_ms(attempts: int, scale: float) -> int | None:
    """How long to wait after the ``attempts``-th failed attempt, or None
    when that was the last one."""
    if attempts > len(RETRY_DELAYS_S):
        return None
    return max(1, int(RETRY_DELAYS_S[attempts - 1] * 1000 * scale))


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """The v1 signature of a delivery: base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    return base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signature_header(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value."""
    return f"v1,{sign(secret, message_id, timestamp_s, body)}"
