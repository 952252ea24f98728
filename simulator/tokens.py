"""JWTs for the simulated workers and customers, minted locally with the server's secret.

The server checks HS256 tokens with ``sub``, ``role``, ``iat`` and ``exp``;
a worker's token also carries its ``city``, ``skills`` and ``capacity``. The
simulator knows the secret (``--secret``, default ``$DISPATCH_JWT_SECRET`` or
the development secret), so it needs no sign-up endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jwt


def worker_token(
    secret: str,
    worker_id: str,
    city: str,
    skills: Sequence[str],
    ttl_s: float,
    capacity: int = 1,
) -> str:
    """A worker's bearer token, valid for ``ttl_s`` seconds."""
    now = int(time.time())
    claims = {
        "sub": worker_id,
        "role": "worker",
        "city": city,
        "skills": list(skills),
        "capacity": capacity,
        "iat": now,
        "exp": now + int(ttl_s),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def customer_token(secret: str, customer_id: str, ttl_s: float) -> str:
    """A customer's bearer token, valid for ``ttl_s`` seconds."""
    now = int(time.time())
    claims = {"sub": customer_id, "role": "customer", "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm="HS256")
