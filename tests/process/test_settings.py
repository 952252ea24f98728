"""Settings loading (``server/process/settings.py``): environment, file, and what is refused.

Synchronous tests: the environment is passed in as a mapping, the settings file
is written to ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.messages import OfferMode
from server.process import settings
from server.process.settings import Settings, SettingsError

# A non-default value for every field, as the environment spells it.
FULL_ENV = {
    "DISPATCH_HOST": "0.0.0.0",
    "DISPATCH_PORT": "9001",
    "DISPATCH_CITIES": "oslo,bergen",
    "REDIS_URL": "redis://cache:6380/2",
    "DISPATCH_DATA_DIR": "/srv/redis",
    "DISPATCH_NODE_ID": "node-a",
    "DISPATCH_JWT_SECRET": "s" * 40,
    "DISPATCH_JWT_ISSUER": "accounts.example",
    "DISPATCH_TOKEN_TTL_S": "60",
    "DISPATCH_TOKEN_MAX_TTL_S": "3600",
    "DISPATCH_OFFER_MODE": "broadcast",
    "DISPATCH_OFFER_TIMEOUT_S": "2.5",
    "DISPATCH_BROADCAST_SIZE": "5",
    "DISPATCH_RADIUS_STEPS_KM": "0.5,1.5",
    "DISPATCH_SEARCH_COUNT": "25",
    "DISPATCH_MAX_DISPATCH_S": "30",
    "DISPATCH_RETRY_INTERVAL_S": "1.5",
    "DISPATCH_LOCATION_MAX_AGE_S": "10",
    "DISPATCH_FIX_MAX_AHEAD_S": "60",
    "DISPATCH_FIX_MAX_BEHIND_S": "600",
    "DISPATCH_LOCATION_FLUSH_MS": "5",
    "DISPATCH_SWEEP_INTERVAL_MS": "50",
    "DISPATCH_LEASE_MS": "1000",
    "DISPATCH_HEARTBEAT_MS": "500",
    "DISPATCH_NODE_TTL_MS": "1500",
    "DISPATCH_RETENTION_S": "3600",
    "DISPATCH_BOOKING_LEAD_S": "7200",
    "DISPATCH_RANKING_CACHE_S": "5",
    "DISPATCH_BOOKING_REMIND_S": "600",
    "DISPATCH_MIN_SAMPLES": "3",
    "DISPATCH_REDIS_TIMEOUT_MS": "750",
    "DISPATCH_MAX_FRAME_BYTES": "1024",
    "DISPATCH_OUTBOX_MAX_BYTES": "4096",
    "DISPATCH_LOCATION_RATE_PER_S": "2",
    "DISPATCH_FRAME_RATE_PER_S": "4",
    "DISPATCH_ORDER_RATE_PER_S": "0.5",
    "DISPATCH_ORDER_BURST": "3",
    "DISPATCH_HELLO_TIMEOUT_S": "4",
    "DISPATCH_HEADER_TIMEOUT_S": "3",
    "DISPATCH_BODY_TIMEOUT_S": "6",
    "DISPATCH_SEND_TIMEOUT_S": "7",
    "DISPATCH_MAX_CONNECTIONS": "100",
    "DISPATCH_SHUTDOWN_TIMEOUT_S": "2",
    "DISPATCH_ALLOWED_ORIGINS": "https://ops.example,https://app.example",
    "DISPATCH_METRICS_TOKEN": "m" * 24,
    "DISPATCH_METRICS_DIR": "/run/dispatch/metrics",
    "DISPATCH_IDEMPOTENCY_TTL_S": "60",
    "DISPATCH_EVENTS_KEEP_S": "600",
    "DISPATCH_WEBHOOK_TIMEOUT_S": "3",
    "DISPATCH_WEBHOOK_RETRY_SCALE": "0.5",
    "DISPATCH_WEBHOOK_CONCURRENCY": "8",
    "DISPATCH_WEBHOOK_POLL_MS": "50",
    "DISPATCH_CATEGORIES": "/etc/dispatch/categories,extra.toml",
    "DISPATCH_BUILTIN_CATEGORIES": "false",
    "DISPATCH_ACCESS_LOG": "true",
    "DISPATCH_LOG_LEVEL": "debug",
    "DISPATCH_LOG_FORMAT": "json",
}
FULL_SETTINGS = Settings(
    host="0.0.0.0",
    port=9001,
    cities=("oslo", "bergen"),
    redis_url="redis://cache:6380/2",
    data_dir="/srv/redis",
    node_id="node-a",
    jwt_secret="s" * 40,
    jwt_issuer="accounts.example",
    token_ttl_s=60,
    token_max_ttl_s=3600,
    offer_mode=OfferMode.BROADCAST,
    offer_timeout_s=2.5,
    broadcast_size=5,
    radius_steps_km=(0.5, 1.5),
    search_count=25,
    max_dispatch_s=30.0,
    retry_interval_s=1.5,
    location_max_age_s=10.0,
    fix_max_ahead_s=60.0,
    fix_max_behind_s=600.0,
    location_flush_ms=5,
    sweep_interval_ms=50,
    lease_ms=1000,
    heartbeat_ms=500,
    node_ttl_ms=1500,
    retention_s=3600,
    booking_lead_s=7200.0,
    ranking_cache_s=5.0,
    booking_remind_s=600.0,
    min_samples=3,
    redis_timeout_ms=750,
    max_frame_bytes=1024,
    outbox_max_bytes=4096,
    location_rate_per_s=2.0,
    frame_rate_per_s=4.0,
    order_rate_per_s=0.5,
    order_burst=3,
    hello_timeout_s=4.0,
    header_timeout_s=3.0,
    body_timeout_s=6.0,
    send_timeout_s=7.0,
    max_connections=100,
    shutdown_timeout_s=2.0,
    allowed_origins=("https://ops.example", "https://app.example"),
    metrics_token="m" * 24,
    metrics_dir="/run/dispatch/metrics",
    idempotency_ttl_s=60,
    events_keep_s=600,
    webhook_timeout_s=3.0,
    webhook_retry_scale=0.5,
    webhook_concurrency=8,
    webhook_poll_ms=50,
    categories=("/etc/dispatch/categories", "extra.toml"),
    builtin_categories=False,
    access_log=True,
    log_level="debug",
    log_format="json",
)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dispatch.toml"
    path.write_text(text)
    return path


def test_defaults_without_env_or_file() -> None:
    """With an empty environment and no file, the defaults apply."""
    assert settings.load({}) == Settings()


def test_full_env_sample_names_every_field() -> None:
    """The environment sample below sets every field, so the next test covers them all."""
    assert set(FULL_ENV) == set(settings.env_names().values())
    assert all(
        getattr(FULL_SETTINGS, f) != getattr(Settings(), f) for f in Settings.__struct_fields__
    )


def test_every_field_is_read_from_env() -> None:
    """Each field is read from DISPATCH_<NAME> (REDIS_URL for redis_url), strings converted."""
    assert settings.load(FULL_ENV) == FULL_SETTINGS


def test_env_names() -> None:
    """redis_url is read from REDIS_URL, every other field from DISPATCH_<NAME>."""
    names = settings.env_names()
    assert names["redis_url"] == "REDIS_URL"
    assert names["offer_timeout_s"] == "DISPATCH_OFFER_TIMEOUT_S"


def test_load_reads_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, load() reads os.environ."""
    monkeypatch.delenv("DISPATCH_CONFIG", raising=False)
    monkeypatch.setenv("DISPATCH_SEARCH_COUNT", "7")
    assert settings.load().search_count == 7


def test_file_is_read(tmp_path: Path) -> None:
    """Values in the TOML file override the defaults."""
    path = _toml(tmp_path, 'port = 9100\noffer_mode = "broadcast"\nradius_steps_km = [0.5, 2]\n')
    loaded = settings.load({}, config_file=path)
    assert loaded.port == 9100
    assert loaded.offer_mode is OfferMode.BROADCAST
    assert loaded.radius_steps_km == (0.5, 2.0)
    assert loaded.host == Settings().host


def test_file_named_by_dispatch_config(tmp_path: Path) -> None:
    """DISPATCH_CONFIG names the settings file when no file is passed."""
    path = _toml(tmp_path, "broadcast_size = 9\n")
    assert settings.load({"DISPATCH_CONFIG": str(path)}).broadcast_size == 9


def test_env_beats_file(tmp_path: Path) -> None:
    """An environment variable overrides the same field in the file."""
    path = _toml(tmp_path, "port = 9100\nlease_ms = 2000\n")
    loaded = settings.load({"DISPATCH_PORT": "9200"}, config_file=path)
    assert loaded.port == 9200
    assert loaded.lease_ms == 2000


def test_list_from_comma_string() -> None:
    """A list field is a comma-separated string in the environment; blanks are ignored."""
    loaded = settings.load({"DISPATCH_RADIUS_STEPS_KM": " 1, 2.5 ,4,"})
    assert loaded.radius_steps_km == (1.0, 2.5, 4.0)


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("DISPATCH_PORT", "abc", "port"),
        ("DISPATCH_PORT", "70000", "port"),
        ("DISPATCH_OFFER_MODE", "round_robin", "offer_mode"),
        ("DISPATCH_BROADCAST_SIZE", "0", "broadcast_size"),
        ("DISPATCH_TOKEN_TTL_S", "1.5", "token_ttl_s"),
        ("DISPATCH_OFFER_TIMEOUT_S", "0", "offer_timeout_s"),
        ("DISPATCH_OFFER_TIMEOUT_S", "nan", "offer_timeout_s"),
        ("DISPATCH_RADIUS_STEPS_KM", "a,2", "radius_steps_km"),
    ],
)
def test_bad_env_value_names_the_field(name: str, value: str, field: str) -> None:
    """A value of the wrong type or out of range raises SettingsError naming the field."""
    with pytest.raises(SettingsError, match=field):
        settings.load({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DISPATCH_OFFER_TIMEOUT_S", "inf"),
        ("DISPATCH_MAX_DISPATCH_S", "inf"),
        ("DISPATCH_RADIUS_STEPS_KM", "nan"),
        ("DISPATCH_RADIUS_STEPS_KM", "1,inf"),
    ],
)
def test_non_finite_value_is_refused(name: str, value: str) -> None:
    """A duration or radius of inf or nan is refused, not accepted as a number."""
    with pytest.raises(SettingsError):
        settings.load({name: value})


def test_bad_file_value_names_the_field(tmp_path: Path) -> None:
    """A wrong value in the file raises SettingsError naming the field."""
    path = _toml(tmp_path, 'search_count = "many"\n')
    with pytest.raises(SettingsError, match="search_count"):
        settings.load({}, config_file=path)


@pytest.mark.parametrize("steps", ["2,1", "1,1", "1,3,2", "", "-1,1"])
def test_radius_steps_must_be_positive_and_increasing(steps: str) -> None:
    """Radius steps that are empty, repeated, decreasing or not positive are refused."""
    with pytest.raises(SettingsError, match="radius_steps_km"):
        settings.load({"DISPATCH_RADIUS_STEPS_KM": steps})


def test_radius_steps_in_file_must_increase(tmp_path: Path) -> None:
    """Non-increasing radius steps in the file are refused too."""
    path = _toml(tmp_path, "radius_steps_km = [3, 2]\n")
    with pytest.raises(SettingsError, match="radius_steps_km"):
        settings.load({}, config_file=path)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    """A key the settings do not have (a typo) is refused, naming the key."""
    path = _toml(tmp_path, "port = 9000\nofer_timeout_s = 3\n")
    with pytest.raises(SettingsError, match="ofer_timeout_s"):
        settings.load({}, config_file=path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A settings file that cannot be read raises SettingsError naming it."""
    path = tmp_path / "absent.toml"
    with pytest.raises(SettingsError, match=r"absent\.toml"):
        settings.load({}, config_file=path)


def test_malformed_toml_is_refused(tmp_path: Path) -> None:
    """A settings file that is not TOML raises SettingsError."""
    path = _toml(tmp_path, "port = = 1\n")
    with pytest.raises(SettingsError, match=r"dispatch\.toml"):
        settings.load({}, config_file=path)
