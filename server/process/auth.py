"""Verifying the protocol's bearer tokens (JWT, HS256, pinned).

A token must be signed with the deployment's secret, name this deployment as
its issuer (``iss``), carry integer ``iat`` and ``exp`` no further apart than
``token_max_ttl_s``, and a subject (``sub``) matching the id pattern of
``protocol/ids.py``; a worker's token also names a valid ``city``, its
``skills`` and its ``capacity``. Anything else is :class:`Unauthorized`.
The claims themselves are written once, in ``protocol/tokens.py``.

Expiry is checked against the ``now`` the caller passes: the server passes
its estimate of Redis time, the one clock of the system, so a node whose own
clock is off neither accepts expired tokens nor refuses valid ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple, TypeGuard

import jwt

from protocol import ids, tokens
from protocol.tokens import Role
from server.core.errors import ClientError

MAX_SKILLS = 16
MAX_CAPACITY = 16
ISSUED_LEEWAY_S = 60  # an iat this far in the future is still taken (issuers' clocks drift)


class TokenPolicy(NamedTuple):
    """What a valid token must satisfy (from the settings)."""

    secret: str
    issuer: str = tokens.DEFAULT_ISSUER
    max_ttl_s: int = 7 * 86400


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


def check_names(subject: str, city: str = "", skills: Sequence[str] = ()) -> None:
    """Raise ``ValueError`` naming the first id that does not match its pattern."""
    if not ids.SUBJECT_RE.match(subject):
        raise ValueError(f"subject {subject!r} does not match {ids.SUBJECT}")
    for name in [city] * bool(city) + list(skills):
        if not ids.NAME_RE.match(name):
            raise ValueError(f"name {name!r} does not match {ids.NAME}")


def mint(
    policy: TokenPolicy,
    role: Role,
    subject: str,
    *,
    ttl_s: int,
    city: str = "",
    skills: Sequence[str] = (),
    capacity: int = 1,
    now: float | None = None,
) -> str:
    """A signed token for ``subject``; raises ``ValueError`` for a bad id or lifetime."""
    check_names(subject, city, skills)
    if not 0 < ttl_s <= policy.max_ttl_s:
        raise ValueError(f"ttl must be between 1 and {policy.max_ttl_s} s (token_max_ttl_s)")
    body = tokens.claims(role, subject, ttl_s=ttl_s, issuer=policy.issuer, city=city,
                         skills=skills, capacity=capacity, now=now)  # fmt: skip
    return tokens.mint(policy.secret, body)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _worker_fields(claims: dict[str, object]) -> tuple[str, tuple[str, ...], int]:
    city, skills, capacity = claims.get("city"), claims.get("skills", []), claims.get("capacity", 1)
    if not isinstance(city, str) or not ids.NAME_RE.match(city):
        raise Unauthorized(f"worker token needs a 'city' matching {ids.NAME}")
    if (
        not isinstance(skills, list)
        or len(skills) > MAX_SKILLS
        or not all(isinstance(s, str) and ids.NAME_RE.match(s) for s in skills)
    ):
        raise Unauthorized(f"worker token 'skills' must be a list of at most {MAX_SKILLS} names")
    if not _is_int(capacity) or not 1 <= capacity <= MAX_CAPACITY:
        raise Unauthorized(f"worker token 'capacity' must be an integer from 1 to {MAX_CAPACITY}")
    return city, tuple(skills), capacity


# Tokens verified lately, with their expiry: a customer client sends the same
# token with every request, and checking the signature each time was ~2.5% of
# the server's CPU at 500 orders/s. Bounded; the oldest entries go first.
_VERIFIED: dict[tuple[TokenPolicy, str, str], tuple[Identity, float]] = {}
_VERIFIED_MAX = 4096


def verify(
    policy: TokenPolicy, token: str | None, role: Role, now: float | None = None
) -> Identity:
    """The identity in ``token``, which must be valid at ``now`` (seconds; default this
    machine's clock) and for ``role``."""
    if not token:
        raise Unauthorized("missing")
    at = time.time() if now is None else now
    key = (policy, token, role)
    hit = _VERIFIED.get(key)
    if hit is not None and hit[1] > at:
        return hit[0]
    identity, expires = _verify(policy, token, role, at)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]
    _VERIFIED[key] = (identity, expires)
    return identity


def _verify(policy: TokenPolicy, token: str, role: Role, now: float) -> tuple[Identity, float]:
    try:
        claims = jwt.decode(
            token, policy.secret, algorithms=[tokens.ALGORITHM], issuer=policy.issuer,
            options={"require": ["exp", "iat", "sub", "role", "iss"], "verify_exp": False,
                     "verify_iat": False},
        )  # fmt: skip
    except jwt.PyJWTError as exc:
        raise Unauthorized(str(exc)) from exc
    issued, expires = claims["iat"], claims["exp"]
    if not (_is_int(issued) and _is_int(expires)):
        raise Unauthorized("'iat' and 'exp' must be integers (seconds since the epoch)")
    if expires <= now:
        raise Unauthorized("Signature has expired")
    if issued > now + ISSUED_LEEWAY_S:
        raise Unauthorized("issued in the future ('iat')")
    if expires - issued > policy.max_ttl_s:
        raise Unauthorized(f"lifetime over {policy.max_ttl_s} s (token_max_ttl_s)")
    subject = claims["sub"]
    if not isinstance(subject, str) or not ids.SUBJECT_RE.match(subject):
        raise Unauthorized(f"'sub' must match {ids.SUBJECT}")
    if claims["role"] != role:
        raise Forbidden(str(claims["role"]), role)
    if role != "worker":
        return Identity(subject, role), float(expires)
    return Identity(subject, role, *_worker_fields(claims)), float(expires)


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header, if any."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None
