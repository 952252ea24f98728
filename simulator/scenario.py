"""Scenarios: what a simulation run does, as one frozen :class:`SimConfig`.

Scenario files are TOML (``simulator/scenarios/*.toml``); :func:`load_scenario`
reads one by name or path and validates it against the structs below, so a
typo or a bad value fails at once with :class:`ScenarioError` naming the key
(``workers.accept_probability: Expected `float` <= 1.0, got 1.5``). Every
field has a default, so a scenario file only says what differs. Run settings
(server URL, JWT secret, processes) live in the same struct so that the one
value :func:`simulator.simulate` takes describes the whole run.

Ranges are written ``[min, max]`` and sampled uniformly unless said otherwise.
Imports nothing from ``server``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from protocol.ids import Name

# The server's development default (server/process/settings.py); never use it in production.
DEV_SECRET = "dev-only-secret-change-me-in-production"

Share = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Meta(ge=0.0)]
Positive = Annotated[float, Meta(gt=0.0)]
Span = tuple[NonNegative, NonNegative]


class ScenarioError(ValueError):
    """A scenario file is missing, not TOML, or has a bad key or value (named in the message)."""


def _check_spans(owner: Struct, *names: str) -> None:
    """Raise ValueError naming the first ``[min, max]`` field whose min exceeds its max."""
    for name in names:
        low, high = getattr(owner, name)
        if low > high:
            raise ValueError(f"`{name}`: min {low} is greater than max {high}")


class ResponseDelay(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How long a worker takes to answer an offer: lognormal, capped at ``max_s``."""

    median_s: Positive = 2.0  # half the answers come faster than this
    sigma: NonNegative = 0.5  # spread (of the log); 0 makes every answer take median_s
    max_s: Positive = 10.0  # nobody takes longer (an offer may still expire first)


class Behaviour(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A kind of worker: its share of the fleet and how it differs from the
    scenario's ``workers`` defaults. A reliable worker needs no more than
    ``share``; a slow one answers ``response_factor`` times slower, a picky one
    accepts fewer offers, a flaky one hands back ``hand_back_share`` of the
    jobs it accepts. Its customers rate its completed jobs within ``stars``."""

    share: NonNegative = 1.0  # relative share of the fleet
    accept_probability: Share | None = None  # default: workers.accept_probability
    response_factor: Positive = 1.0  # its answers take this many times as long
    hand_back_share: Share = 0.0  # of the jobs it accepts, it hands this share back
    stars: Span = (4.0, 5.0)  # its customers' ratings, rounded to whole stars

    def __post_init__(self) -> None:
        _check_spans(self, "stars")
        if not 1 <= self.stars[0] <= self.stars[1] <= 5:
            raise ValueError("`stars`: need 1 <= min <= max <= 5")


class Vehicle(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A kind of vehicle: its share of the fleet and its speed range in town."""

    share: NonNegative  # relative share of the fleet
    speed_kmh: Span  # each worker's speed is drawn once from this range


class Skill(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A service: its share of orders, of workers able to do it, and how a job goes.

    With ``dropoff_km`` set the job is a delivery or ride: the worker picks up,
    then drives to a drop-off that far away and completes after ``service_s``
    there. Without it the work happens at the pickup for ``service_s``.

    With ``category`` the orders name that service category (whose first
    skill must be this one) with attributes drawn from ``attributes``, one of
    the listed tables at random per order; the workers walk the category's
    steps, and its customers decide their approvals. Without it the orders
    name the bare skill."""

    order_weight: NonNegative = 1.0  # relative share of the orders needing this skill
    worker_share: Share = 1.0  # probability that a worker has it (each has at least one)
    service_s: Span = (60.0, 300.0)  # time on site, or handing over at the drop-off
    dropoff_km: Span | None = None  # Manhattan distance of the drop-off from the pickup
    category: Name | None = None  # order by this service category (PROTOCOL.md §18)
    attributes: list[dict[str, Any]] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_spans(self, "service_s")
        if self.dropoff_km is not None:
            _check_spans(self, "dropoff_km")


class Shift(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Going off and on shift: exponential on and off times; ``mean_on_s = 0`` means never off."""

    mean_on_s: NonNegative = 0.0
    mean_off_s: NonNegative = 60.0


class Workers(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The fleet and how each worker behaves."""

    count: Annotated[int, Meta(ge=0)] = 100
    report_interval_s: Positive = 4.0  # between one worker's location frames
    ramp_s: NonNegative = 5.0  # connections spread evenly over this, before orders start
    accept_probability: Share = 0.9  # the rest of the offers are rejected
    response_delay: ResponseDelay = ResponseDelay()
    start_delay_s: Span = (1.0, 3.0)  # from "arrived" to "started" (ringing the bell)
    roam_radius_m: NonNegative = 1_000.0  # idle workers cruise to points this close
    roam_speed_factor: Positive = 0.5  # cruising speed as a share of driving speed
    reconnect_base_s: Positive = 0.5  # first backoff after a dropped connection
    reconnect_max_s: Positive = 30.0  # backoff cap (doubling, with full jitter)
    shift: Shift = Shift()
    # kinds of worker, drawn by their shares (one kind, "steady", when not given)
    behaviours: dict[Name, Behaviour] = msgspec.field(
        default_factory=lambda: {"steady": Behaviour()}
    )
    late_share: Share = 0.0  # this share of the fleet joins late_join_s after the ramp:
    late_join_s: NonNegative = 0.0  # newcomers among workers with a record
    vehicles: dict[Name, Vehicle] = msgspec.field(
        default_factory=lambda: {
            "ebike": Vehicle(share=0.6, speed_kmh=(15.0, 20.0)),
            "car": Vehicle(share=0.4, speed_kmh=(25.0, 35.0)),
        }
    )

    def __post_init__(self) -> None:
        _check_spans(self, "start_delay_s")
        if not self.vehicles or sum(v.share for v in self.vehicles.values()) <= 0:
            raise ValueError("`vehicles`: give at least one vehicle with a share > 0")
        if not self.behaviours or sum(b.share for b in self.behaviours.values()) <= 0:
            raise ValueError("`behaviours`: give at least one behaviour with a share > 0")
        for name, vehicle in self.vehicles.items():
            if not 0 < vehicle.speed_kmh[0] <= vehicle.speed_kmh[1]:
                raise ValueError(f"`vehicles.{name}.speed_kmh`: need 0 < min <= max")


class Orders(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Customers: Poisson arrivals, and what share follows live or cancels."""

    rate_per_s: NonNegative = 1.0  # mean arrivals per second, all processes together
    follow_share: Share = 0.3  # follow the order over the live WebSocket
    cancel_share: Share = 0.05  # cancel after a delay drawn from cancel_delay_s
    cancel_delay_s: Span = (5.0, 60.0)
    broadcast_share: Share = 0.0  # ask for broadcast offers; the rest use the server default
    approve_share: Share = 0.9  # a customer asked to approve a step approves; the rest reject
    approve_delay_s: Span = (1.0, 5.0)  # how long the customer takes to decide
    customers: Annotated[int, Meta(ge=1)] = 200  # distinct customer accounts per process
    rate_share: Share = 0.0  # rate a completed order (the worker's behaviour says how well)
    tip_share: Share = 0.0  # tip the worker of a completed order of a category
    tip: Span = (100.0, 300.0)  # the tip, in minor units of the order's currency

    def __post_init__(self) -> None:
        _check_spans(self, "cancel_delay_s", "approve_delay_s", "tip")


class Outage(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """At ``at_s`` the workers inside ``district`` go offline, for ``for_s`` (0: to the end)."""

    at_s: NonNegative
    district: str
    for_s: NonNegative = 0.0


def _default_skills() -> dict[str, Skill]:
    return {
        "delivery": Skill(
            order_weight=0.6, worker_share=0.7, service_s=(30, 90), dropoff_km=(1, 4)
        ),
        "cleaning": Skill(order_weight=0.25, worker_share=0.3, service_s=(600, 1800)),
        "beauty": Skill(order_weight=0.15, worker_share=0.2, service_s=(900, 2700)),
    }


class SimConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One simulation run: the scenario plus where and how to run it."""

    name: str = "custom"
    description: str = ""
    seed: int = 1  # the same seed replays the same fleet, orders and decisions
    duration_s: Positive = 60.0  # seconds of placing orders, after the ramp
    grace_s: NonNegative = 10.0  # then at most this long for open orders to end
    city: Name = "metro"  # the city name on the wire (NAME-0, NAME-1, ... with procs > 1)
    districts: str | None = None  # GeoJSON file; default: the built-in 10 x 10 km city
    block_m: Positive = 100.0  # street grid spacing
    speed_factor: Positive = 1.0  # fast-forward for journeys (the demo uses 50)
    workers: Workers = Workers()
    orders: Orders = Orders()
    skills: dict[Name, Skill] = msgspec.field(default_factory=_default_skills)
    outages: list[Outage] = msgspec.field(default_factory=list)
    # category definition files (relative to the scenario's folder) applied through
    # the admin API before the run, so that its skills can name them
    categories: list[str] = msgspec.field(default_factory=list)
    # Run settings, normally from the command line.
    url: str = "http://127.0.0.1:8000"
    secret: str = msgspec.field(
        default_factory=lambda: os.environ.get("DISPATCH_JWT_SECRET", DEV_SECRET)
    )
    procs: Annotated[int, Meta(ge=1, le=256)] = 1
    progress_interval_s: Positive = 1.0
    journal: str | None = None  # a folder: log what clients were told (simulator/journal.py)

    @property
    def urls(self) -> tuple[str, ...]:
        """The server nodes' base URLs: ``url`` may list several, comma-separated."""
        return tuple(u.strip().rstrip("/") for u in self.url.split(",") if u.strip())

    def __post_init__(self) -> None:
        if not self.skills or sum(s.order_weight for s in self.skills.values()) <= 0:
            raise ValueError("`skills`: give at least one skill with an order_weight > 0")


SCENARIO_DIR = Path(__file__).parent / "scenarios"


def scenario_names() -> list[str]:
    """The names of the built-in scenarios."""
    files = SCENARIO_DIR.iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def scenario_path(name_or_path: str) -> Path:
    """The file for a built-in scenario name, or the given path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    builtin = SCENARIO_DIR / f"{name_or_path}.toml"
    if not builtin.exists():
        known = ", ".join(scenario_names())
        raise ScenarioError(f"no scenario {name_or_path!r} (built-in: {known}; or give a path)")
    return builtin


def load_scenario(name_or_path: str) -> SimConfig:
    """Read and validate a scenario; a relative ``districts`` path is taken from its folder."""
    path = scenario_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    config = parse_scenario(data, str(path))
    if config.districts is not None and not Path(config.districts).is_absolute():
        districts = str(path.parent / config.districts)
        config = msgspec.structs.replace(config, districts=districts)
    files = [f if Path(f).is_absolute() else str(path.parent / f) for f in config.categories]
    return msgspec.structs.replace(config, categories=files)


def parse_scenario(data: dict[str, Any], source: str = "scenario") -> SimConfig:
    """Validate a decoded scenario; errors name the key as a dotted path."""
    try:
        _check_named_tables(data)
        return msgspec.convert(data, SimConfig)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{source}: {_readable(str(exc))}") from None


def _check_named_tables(data: dict[str, Any]) -> None:
    """Validate ``skills.NAME`` and ``workers.vehicles.NAME`` one by one, so that an error
    names the entry (msgspec reports a bad dict value only as ``[...]``)."""
    workers = data.get("workers")
    tables: list[tuple[str, Any, type[Struct]]] = [("skills", data.get("skills"), Skill)]
    if isinstance(workers, dict):
        tables.append(("workers.vehicles", workers.get("vehicles"), Vehicle))
        tables.append(("workers.behaviours", workers.get("behaviours"), Behaviour))
    for prefix, table, kind in tables:
        if not isinstance(table, dict):
            continue
        for name, entry in table.items():
            try:
                msgspec.convert(entry, kind)
            except msgspec.ValidationError as exc:
                where = f"{prefix}.{name}"
                text, sep, inner = str(exc).rpartition(" - at `$")
                raise msgspec.ValidationError(
                    f"{text} - at `$.{where}{inner}" if sep else f"{exc} - at `$.{where}`"
                ) from None


def _readable(message: str) -> str:
    """``Expected x - at `$.workers.count``` -> ``workers.count: Expected x``."""
    text, sep, where = message.rpartition(" - at `")
    text = text if sep else message
    names = where.startswith("key` in `")  # a bad name in a table such as [skills]
    where = where.removeprefix("key` in `").rstrip("`").removeprefix("$").lstrip(".")
    if names:
        return f"{where}: bad name: {text}"
    unknown = "Object contains unknown field `"
    if text.startswith(unknown):
        key = text[len(unknown) :].rstrip("`")
        return f"{where + '.' if where else ''}{key}: unknown key"
    return f"{where or '(top level)'}: {text}"


def with_overrides(config: SimConfig, overrides: dict[str, Any]) -> SimConfig:
    """``config`` with dotted keys replaced (``{"workers.count": 10}``), validated again.

    ``None`` values are skipped, so command-line options that were not given
    change nothing; a bad value raises :class:`ScenarioError` naming its key.
    """
    data = msgspec.to_builtins(config)
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, key = dotted.split(".")
        section = data
        for parent in parents:
            section = section[parent]
        section[key] = value
    return parse_scenario(data, "override")
