"""The bearer tokens of the protocol (``PROTOCOL.md`` §3): which claims a
token carries, and minting one.

Tokens are JWTs signed with HS256. Every token names its subject (``sub``),
its ``role`` (``worker``, ``customer`` or ``admin``: an operator), its issuer
(``iss``), when it was issued (``iat``) and when it expires (``exp``); a
worker's token also carries its ``city``, ``skills`` and ``capacity``. The
platform's account service issues them in production; the server's
``dispatch token``, the simulator and the load test mint development ones
here, so the claims are written once. Verifying is the server's job
(``server/process/auth.py``).

Imports nothing from ``server`` or ``simulator``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final, Literal

import jwt

ALGORITHM: Final = "HS256"
DEFAULT_ISSUER: Final = "dispatch"
Role = Literal["worker", "customer", "admin"]


def claims(
    role: Role,
    subject: str,
    *,
    ttl_s: float,
    issuer: str = DEFAULT_ISSUER,
    city: str = "",
    skills: Sequence[str] = (),
    capacity: int = 1,
    now: float | None = None,
) -> dict[str, object]:
    """The claims of a token for ``subject``, valid for ``ttl_s`` seconds from ``now``."""
    issued = int(time.time() if now is None else now)
    out: dict[str, object] = {
        "sub": subject, "role": role, "iss": issuer, "iat": issued, "exp": issued + int(ttl_s),
    }  # fmt: skip
    if role == "worker":
        out.update(city=city, skills=list(skills), capacity=capacity)
    return out


def mint(secret: str, body: dict[str, object]) -> str:
    """A token carrying ``body`` (made by :func:`claims`), signed with ``secret``."""
    return jwt.encode(body, secret, algorithm=ALGORITHM)
