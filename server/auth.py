"""Signed tokens for workers and customers (JWT, HS256, pinned).

A token names its subject (``sub``), its ``role`` and an expiry (``exp``,
always required and checked). Worker tokens also carry the worker's ``city``,
``skills`` and ``capacity``: the platform's account service issues them; here
``dispatch token`` mints development ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jwt

from server.core.errors import ClientError
from server.store.keys import CITY_PATTERN

ALGORITHM = "HS256"
Role = Literal["worker", "customer"]


class Identity(NamedTuple):
    """Who a verified token speaks for."""

    subject: str
    role: Role
    city: str = ""
    skills: tuple[str, ...] = ()
    capacity: int = 1


class Unauthorized(ClientError):
    """No token, or one that is malformed, expired or badly signed."""

    def __init__(self, why: str) -> None:
        super().__init__("unauthorized", f"invalid token: {why}")


class Forbidden(ClientError):
    """A valid token for another kind of client."""

    def __init__(self, role: str, wanted: str) -> None:
        super().__init__("forbidden", f"a {role} token cannot be used here; {wanted} only")


def mint(
    secret: str,
    role: Role,
    subject: str,
    *,
    ttl_s: int,
    city: str = "",
    skills: Sequence[str] = (),
    capacity: int = 1,
    now: float | None = None,
) -> str:
    """A signed token for ``subject``; valid for ``ttl_s`` seconds."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": subject, "role": role, "iat": issued, "exp": issued + ttl_s}
    if role == "worker":
        claims.update(city=city, skills=list(skills), capacity=capacity)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _worker_fields(claims: dict[str, object]) -> tuple[str, tuple[str, ...], int]:
    city, skills, capacity = claims.get("city"), claims.get("skills", []), claims.get("capacity", 1)
    if not isinstance(city, str) or not CITY_PATTERN.match(city):
        raise Unauthorized("worker token needs a valid 'city'")
    if not isinstance(skills, list) or not all(
        isinstance(s, str) and CITY_PATTERN.match(s) for s in skills
    ):
        raise Unauthorized("worker token 'skills' must be a list of names")
    if not isinstance(capacity, int) or not 1 <= capacity <= 16:
        raise Unauthorized("worker token 'capacity' must be an integer from 1 to 16")
    return city, tuple(skills), capacity


# Tokens verified lately, with their expiry: a customer client sends the same
# token with every request, and checking the signature each time was ~2.5% of
# the server's CPU at 500 orders/s. Bounded; the oldest entries go first.
_VERIFIED: dict[tuple[str, str, str], tuple[Identity, float]] = {}
_VERIFIED_MAX = 4096


def verify(secret: str, token: str | None, role: Role) -> Identity:
    """The identity in ``token``, which must be valid and for ``role``."""
    if not token:
        raise Unauthorized("missing")
    key = (secret, token, role)
    hit = _VERIFIED.get(key)
    if hit is not None and hit[1] > time.time():
        return hit[0]
    identity, expires = _verify(secret, token, role)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]
    _VERIFIED[key] = (identity, expires)
    return identity


def _verify(secret: str, token: str, role: Role) -> tuple[Identity, float]:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]}
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(str(exc)) from exc
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= 64 or "," in subject:
        raise Unauthorized("'sub' must be a string of 1-64 characters without commas")
    if claims["role"] != role:
        raise Forbidden(str(claims["role"]), role)
    expires = float(claims["exp"])
    if role == "customer":
        return Identity(subject, role), expires
    return Identity(subject, role, *_worker_fields(claims)), expires


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header, if any."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None
