"""Development tokens for load clients, signed with the secret the server was given.

The claims are the protocol's (``protocol/tokens.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol import tokens

TTL_S = 6 * 3600


def worker_token(
    secret: str, worker_id: str, city: str, skills: Sequence[str] = ("delivery",), capacity: int = 1
) -> str:
    """A worker JWT (HS256) valid for a few hours."""
    body = tokens.claims("worker", worker_id, ttl_s=TTL_S, city=city, skills=skills,
                         capacity=capacity)  # fmt: skip
    return tokens.mint(secret, body)


def customer_token(secret: str, customer_id: str) -> str:
    """A customer JWT (HS256) valid for a few hours."""
    return tokens.mint(secret, tokens.claims("customer", customer_id, ttl_s=TTL_S))


def admin_token(secret: str, operator_id: str) -> str:
    """An operator's JWT (HS256), to ask the admin API which cities the server serves."""
    return tokens.mint(secret, tokens.claims("admin", operator_id, ttl_s=TTL_S))
