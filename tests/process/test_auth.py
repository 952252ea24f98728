"""Signed tokens (``server/process/auth.py``): minting, verifying, and every forgery refused.

Synchronous tests: tokens are minted with a fixed ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from protocol.tokens import Role
from server.process import auth

# 64 bytes: long enough for HS512, so PyJWT never warns (warnings are errors here).
SECRET = "0123456789abcdef" * 4
POLICY = auth.TokenPolicy(SECRET)
NOW = time.time()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(alg: str, claims: dict[str, object], secret: str = SECRET) -> str:
    """A token whose header says ``alg``, signed with HMAC-SHA256 (or unsigned for ``none``)."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signing_input = f"{header}.{body}".encode()
    signature = (
        b"" if alg == "none" else hmac.digest(secret.encode(), signing_input, hashlib.sha256)
    )
    return f"{header}.{body}.{_b64(signature)}"


def _claims(**extra: object) -> dict[str, object]:
    base = {
        "sub": "c1",
        "role": "customer",
        "iss": "dispatch",
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }
    return {**base, **extra}


def _worker_token(**fields: object) -> str:
    claims = {"sub": "w1", "role": "worker", "iss": "dispatch", "iat": int(NOW),
              "exp": int(NOW) + 3600}  # fmt: skip
    claims.update(fields)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_worker_token_round_trip() -> None:
    """A minted worker token verifies to its subject, city, skills and capacity."""
    token = auth.mint(
        POLICY, "worker", "w1", ttl_s=60, city="paris", skills=["plumbing", "locks"], capacity=2
    )
    assert auth.verify(POLICY, token, "worker") == auth.Identity(
        "w1", "worker", "paris", ("plumbing", "locks"), 2
    )


def test_customer_token_round_trip() -> None:
    """A minted customer token verifies to its subject and role."""
    token = auth.mint(POLICY, "customer", "c1", ttl_s=60)
    assert auth.verify(POLICY, token, "customer") == auth.Identity("c1", "customer")


def test_minted_token_expires_after_ttl() -> None:
    """mint() sets exp to issue time plus ttl_s, both from ``now``."""
    token = auth.mint(POLICY, "customer", "c1", ttl_s=90, now=1_000_000.7)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert (claims["iat"], claims["exp"]) == (1_000_000, 1_000_090)


def test_expired_token_is_refused() -> None:
    """A token past its exp is refused as unauthorized."""
    token = auth.mint(POLICY, "customer", "c1", ttl_s=60, now=NOW - 3600)
    with pytest.raises(auth.Unauthorized, match="expired") as caught:
        auth.verify(POLICY, token, "customer")
    assert caught.value.code == "unauthorized"


def test_wrong_secret_is_refused() -> None:
    """A token signed with another secret is refused."""
    token = auth.mint(auth.TokenPolicy("fedcba9876543210" * 4), "customer", "c1", ttl_s=60)
    with pytest.raises(auth.Unauthorized):
        auth.verify(POLICY, token, "customer")


def test_forged_hs256_helper_makes_valid_tokens() -> None:
    """The forging helper's HS256 tokens verify, so the refusals below are about the alg alone."""
    assert auth.verify(POLICY, _forged("HS256", _claims()), "customer").subject == "c1"


@pytest.mark.parametrize("alg", ["none", "HS384", "HS512", "RS256", "ES256", "PS256"])
def test_only_hs256_is_accepted(alg: str) -> None:
    """A header naming any algorithm but HS256 is refused, even with a valid HMAC-SHA256 MAC."""
    with pytest.raises(auth.Unauthorized) as caught:
        auth.verify(POLICY, _forged(alg, _claims()), "customer")
    assert caught.value.code == "unauthorized"


def test_genuine_hs384_token_is_refused() -> None:
    """A token properly signed with HS384 and the right secret is refused: the alg is pinned."""
    token = jwt.encode(_claims(), SECRET, algorithm="HS384")
    with pytest.raises(auth.Unauthorized):
        auth.verify(POLICY, token, "customer")


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "role", "iss"])
def test_required_claim_missing_is_refused(claim: str) -> None:
    """A token without exp, iat, sub, role or iss is refused."""
    claims = _claims()
    del claims[claim]
    with pytest.raises(auth.Unauthorized):
        auth.verify(POLICY, jwt.encode(claims, SECRET, algorithm="HS256"), "customer")


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_is_refused(token: str | None) -> None:
    """No token at all is refused as unauthorized."""
    with pytest.raises(auth.Unauthorized, match="missing"):
        auth.verify(POLICY, token, "customer")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b"])
def test_malformed_token_is_refused(token: str) -> None:
    """A string that is not a JWT is refused as unauthorized."""
    with pytest.raises(auth.Unauthorized):
        auth.verify(POLICY, token, "customer")


@pytest.mark.parametrize(("role", "wanted"), [("worker", "customer"), ("customer", "worker")])
def test_role_mismatch_is_forbidden(role: Role, wanted: Role) -> None:
    """A valid token for the other role raises Forbidden with code forbidden."""
    token = auth.mint(POLICY, role, "x1", ttl_s=60, city="paris")
    with pytest.raises(auth.Forbidden) as caught:
        auth.verify(POLICY, token, wanted)
    assert caught.value.code == "forbidden"


@pytest.mark.parametrize("city", ["", "Paris", "new york", "a" * 33, "paris/1", 7])
def test_worker_token_needs_a_valid_city(city: object) -> None:
    """A worker token whose city is empty, badly formed or not a string is refused."""
    with pytest.raises(auth.Unauthorized, match="city"):
        auth.verify(POLICY, _worker_token(city=city), "worker")


def test_worker_token_without_city_is_refused() -> None:
    """A worker token with no city claim at all is refused."""
    with pytest.raises(auth.Unauthorized, match="city"):
        auth.verify(POLICY, _worker_token(), "worker")


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"skills": "plumbing"}, "skills"),
        ({"skills": ["Plumbing"]}, "skills"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 17}, "capacity"),
        ({"capacity": "2"}, "capacity"),
    ],
)
def test_worker_token_needs_valid_skills_and_capacity(fields: dict[str, object], why: str) -> None:
    """A worker token with malformed skills or a capacity outside 1-16 is refused."""
    with pytest.raises(auth.Unauthorized, match=why):
        auth.verify(POLICY, _worker_token(city="paris", **fields), "worker")


BAD_SUBJECTS = ["a" * 65, "w1,w2", "evil\nx", "a b", "a{b}", "w/1", "", "-lead", "ü"]


@pytest.mark.parametrize("subject", BAD_SUBJECTS)
def test_subject_must_match_the_id_pattern(subject: str) -> None:
    """A subject that does not match the one id pattern is refused, however well signed."""
    with pytest.raises(auth.Unauthorized, match="sub"):
        auth.verify(POLICY, _forged("HS256", _claims(sub=subject)), "customer")


@pytest.mark.parametrize("subject", BAD_SUBJECTS)
def test_mint_refuses_a_bad_subject(subject: str) -> None:
    """Minting a token for an id that verification would refuse fails at once."""
    with pytest.raises(ValueError, match="subject"):
        auth.mint(POLICY, "customer", subject, ttl_s=60)


@pytest.mark.parametrize(("city", "skills"), [("Paris", ()), ("paris", ("a b",)), ("x\n", ())])
def test_mint_refuses_bad_city_or_skill(city: str, skills: tuple[str, ...]) -> None:
    """Minting a worker token with a malformed city or skill fails at once."""
    with pytest.raises(ValueError, match="name"):
        auth.mint(POLICY, "worker", "w1", ttl_s=60, city=city, skills=skills)


@pytest.mark.parametrize("exp", ["9999999999", 9_999_999_999.5, True])
def test_exp_must_be_an_integer(exp: object) -> None:
    """A numeric-string, fractional or boolean exp is refused, though JWT libraries may take it."""
    with pytest.raises(auth.Unauthorized):
        auth.verify(POLICY, _forged("HS256", _claims(exp=exp)), "customer")


def test_issuer_must_be_this_deployment() -> None:
    """A token from another issuer, even signed with the right secret, is refused."""
    with pytest.raises(auth.Unauthorized, match=r"(?i)issuer"):
        auth.verify(POLICY, _forged("HS256", _claims(iss="someone-else")), "customer")
    other = auth.TokenPolicy(SECRET, issuer="platform-x")
    assert auth.verify(other, auth.mint(other, "customer", "c1", ttl_s=60), "customer")


def test_lifetime_is_capped() -> None:
    """A token valid for longer than token_max_ttl_s is refused, and is not minted."""
    short = auth.TokenPolicy(SECRET, max_ttl_s=3600)
    with pytest.raises(auth.Unauthorized, match="lifetime"):
        auth.verify(short, _forged("HS256", _claims(exp=int(NOW) + 7200)), "customer")
    with pytest.raises(ValueError, match="ttl"):
        auth.mint(short, "customer", "c1", ttl_s=7200)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearerabc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    """bearer() takes the token from a case-insensitive 'Bearer <token>' header, else None."""
    assert auth.bearer(header) == token


def test_cached_verification_still_honours_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token verified once is not trusted from the cache after its expiry."""
    from server.process import auth as auth_mod

    token = auth_mod.mint(POLICY, "customer", "c-cache", ttl_s=60)
    assert auth_mod.verify(POLICY, token, "customer").subject == "c-cache"
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 120)

    def refuse(*args: object) -> object:
        raise auth_mod.Unauthorized("expired")

    monkeypatch.setattr(auth_mod, "_verify", refuse)
    with pytest.raises(auth_mod.Unauthorized):
        auth_mod.verify(POLICY, token, "customer")


def test_cache_is_per_secret_and_role() -> None:
    """A token cached under one secret or role is not accepted under another."""
    from server.process import auth as auth_mod

    token = auth_mod.mint(POLICY, "customer", "c-key", ttl_s=60)
    auth_mod.verify(POLICY, token, "customer")
    with pytest.raises(auth_mod.Unauthorized):
        auth_mod.verify(auth_mod.TokenPolicy("another-secret-that-is-long-enough-xx"), token,
                        "customer")  # fmt: skip
    with pytest.raises(auth_mod.Forbidden):
        auth_mod.verify(POLICY, token, "worker")
