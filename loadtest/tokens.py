"""Development tokens for load clients, signed with the secret the server was given.

The claims are the protocol's (``protocol/PROTOCOL.md``, tokens): ``sub``,
``role``, ``iat``, ``exp``, and for workers ``city``, ``skills``, ``capacity``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jwt

TTL_S = 6 * 3600


def worker_token(
    secret: str, worker_id: str, city: str, skills: Sequence[str] = ("delivery",), capacity: int = 1
) -> str:
    """A worker JWT (HS256) valid for a few hours."""
    now = int(time.time())
    claims = {
        "sub": worker_id, "role": "worker", "iat": now, "exp": now + TTL_S,
        "city": city, "skills": list(skills), "capacity": capacity,
    }  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256")


def customer_token(secret: str, customer_id: str) -> str:
    """A customer JWT (HS256) valid for a few hours."""
    now = int(time.time())
    claims = {"sub": customer_id, "role": "customer", "iat": now, "exp": now + TTL_S}
    return jwt.encode(claims, secret, algorithm="HS256")
