"""JWTs for the simulated workers and customers, minted locally with the server's secret.

The claims are the protocol's (``protocol/tokens.py``). The simulator knows the
secret (``--secret``, default ``$DISPATCH_JWT_SECRET`` or the development
secret) and the issuer (``$DISPATCH_JWT_ISSUER``, default ``dispatch``), so it
needs no sign-up endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from protocol import tokens


def _issuer() -> str:
    return os.environ.get("DISPATCH_JWT_ISSUER") or tokens.DEFAULT_ISSUER


def worker_token(
    secret: str,
    worker_id: str,
    city: str,
    skills: Sequence[str],
    ttl_s: float,
    capacity: int = 1,
) -> str:
    """A worker's bearer token, valid for ``ttl_s`` seconds."""
    body = tokens.claims("worker", worker_id, ttl_s=ttl_s, issuer=_issuer(), city=city,
                         skills=skills, capacity=capacity)  # fmt: skip
    return tokens.mint(secret, body)


def admin_token(secret: str, operator_id: str, ttl_s: float) -> str:
    """An operator's bearer token (to apply a scenario's categories and read the
    workers' earnings), valid for ``ttl_s`` seconds."""
    return tokens.mint(secret, tokens.claims("admin", operator_id, ttl_s=ttl_s, issuer=_issuer()))


def customer_token(secret: str, customer_id: str, ttl_s: float) -> str:
    """A customer's bearer token, valid for ``ttl_s`` seconds."""
    return tokens.mint(
        secret, tokens.claims("customer", customer_id, ttl_s=ttl_s, issuer=_issuer())
    )
