"""Settings: one frozen struct, read from a TOML file and the environment.

Precedence, lowest first: the defaults below, the TOML file named by
``DISPATCH_CONFIG`` (or ``--config``), then environment variables. Each field
``name`` is read from ``DISPATCH_<NAME>`` (``REDIS_URL`` for ``redis_url``).
Lists are comma-separated in the environment. Every field is documented in the
README's Configuration section; a test keeps the two in step.
"""

from __future__ import annotations

import itertools
import os
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protocol.ids import Name
from protocol.messages import OfferMode
from protocol.tokens import DEFAULT_ISSUER
from server.process.auth import TokenPolicy

DEV_SECRET = "dev-only-secret-change-me-in-production"
MIN_SECRET_BYTES = 32
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

# Bounded above so that inf and nan are refused too.
Positive = Annotated[float, Meta(gt=0, le=1e6)]
PositiveInt = Annotated[int, Meta(gt=0, le=10**9)]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the server can be told. Field docs are in the README."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    cities: tuple[Name, ...] = ("metro",)
    redis_url: str = ""
    data_dir: str = "var/redis"
    node_id: Annotated[str, Meta(pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,47})?\Z")] = ""
    jwt_secret: str = DEV_SECRET
    jwt_issuer: Annotated[str, Meta(min_length=1, max_length=200)] = DEFAULT_ISSUER
    token_ttl_s: PositiveInt = 86400
    token_max_ttl_s: PositiveInt = 7 * 86400
    offer_mode: OfferMode = OfferMode.SEQUENTIAL
    offer_timeout_s: Positive = 15.0
    broadcast_size: PositiveInt = 3
    radius_steps_km: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0)
    search_count: PositiveInt = 10
    max_dispatch_s: Positive = 120.0
    retry_interval_s: Positive = 5.0
    location_max_age_s: Positive = 30.0
    fix_max_ahead_s: Positive = 300.0
    fix_max_behind_s: Positive = 3600.0
    location_flush_ms: PositiveInt = 20
    sweep_interval_ms: PositiveInt = 100
    lease_ms: PositiveInt = 5000
    heartbeat_ms: PositiveInt = 1000
    node_ttl_ms: PositiveInt = 3000
    retention_s: PositiveInt = 7 * 86400
    booking_lead_s: Annotated[float, Meta(ge=0, le=7 * 86400)] = 3600.0
    booking_remind_s: Annotated[float, Meta(ge=0, le=86400)] = 1800.0
    min_samples: PositiveInt = 5  # a worker's score counts only from this many samples
    ranking_cache_s: Annotated[float, Meta(ge=0, le=3600)] = 60.0
    redis_timeout_ms: PositiveInt = 2000
    max_frame_bytes: PositiveInt = 65536
    outbox_max_bytes: PositiveInt = 1 << 20
    location_rate_per_s: Positive = 10.0
    frame_rate_per_s: Positive = 20.0
    order_rate_per_s: Positive = 1.0
    order_burst: PositiveInt = 20
    hello_timeout_s: Positive = 10.0
    header_timeout_s: Positive = 10.0
    body_timeout_s: Positive = 10.0
    send_timeout_s: Positive = 10.0
    max_connections: PositiveInt = 20000
    shutdown_timeout_s: Positive = 10.0
    allowed_origins: tuple[str, ...] = ()
    metrics_token: str = ""
    metrics_dir: str = ""
    idempotency_ttl_s: PositiveInt = 86400
    events_keep_s: PositiveInt = 3600
    webhook_timeout_s: Positive = 10.0
    webhook_retry_scale: Annotated[float, Meta(gt=0, le=100)] = 1.0
    webhook_concurrency: PositiveInt = 50
    webhook_poll_ms: PositiveInt = 200
    categories: tuple[str, ...] = ()
    builtin_categories: bool = True
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    def __post_init__(self) -> None:
        steps = self.radius_steps_km
        if not steps or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("radius_steps_km must be a non-empty, strictly increasing list")
        if not all(0 < step <= 20_000 for step in steps):  # also refuses nan and inf
            raise ValueError("radius_steps_km must be between 0 and 20000 km")
        if not self.cities:
            raise ValueError("cities must name at least one city")
        if self.node_ttl_ms < 2 * self.heartbeat_ms:
            raise ValueError("node_ttl_ms must be at least twice heartbeat_ms")

    @property
    def node(self) -> str:
        """This process's node id (set, or made up once per process)."""
        return self.node_id or _PROCESS_NODE_ID

    @property
    def tokens(self) -> TokenPolicy:
        """What a valid token must satisfy."""
        return TokenPolicy(self.jwt_secret, self.jwt_issuer, self.token_max_ttl_s)

    def insecure_secret(self) -> str | None:
        """Why ``jwt_secret`` is unfit for a server reachable from other hosts, or None."""
        if self.host in LOOPBACK:
            return None
        if self.jwt_secret == DEV_SECRET:
            return "jwt_secret is the built-in development secret"
        if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            return f"jwt_secret is shorter than {MIN_SECRET_BYTES} bytes"
        return None


_PROCESS_NODE_ID = f"node-{uuid.uuid4().hex[:8]}"


class SettingsError(ValueError):
    """The settings file or environment holds a bad value."""


_LISTS = frozenset(
    f for f, kind in Settings.__annotations__.items() if str(kind).startswith("tuple[")
)


def _env_name(field: str) -> str:
    return "REDIS_URL" if field == "redis_url" else f"DISPATCH_{field.upper()}"


def _from_env(environ: Mapping[str, str]) -> dict[str, object]:
    raw: dict[str, object] = {}
    for field in Settings.__struct_fields__:
        value = environ.get(_env_name(field))
        if value is None:
            continue
        raw[field] = (
            [v.strip() for v in value.split(",") if v.strip()] if field in _LISTS else value
        )
    return raw


def load(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Read the settings; raise :class:`SettingsError` naming the bad value."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get("DISPATCH_CONFIG")
    raw: dict[str, object] = {}
    if path:
        try:
            raw.update(tomllib.loads(Path(path).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
    raw.update(_from_env(environ))
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise SettingsError(f"bad setting: {exc}") from exc


def env_names() -> dict[str, str]:
    """Field name to environment variable, for the docs."""
    return {field: _env_name(field) for field in Settings.__struct_fields__}


def for_command(config_file: str | None) -> Settings:
    """The settings a ``dispatch`` command runs with (``--config``, else
    ``DISPATCH_CONFIG``, and the environment); a bad value ends the command
    with its message."""
    try:
        return load(config_file=config_file)
    except SettingsError as exc:
        raise SystemExit(f"dispatch: {exc}") from exc
