"""The end-of-run report: what the run did and how fast the server answered.

:func:`build_report` turns the merged measurements of every process into a
:class:`Report`, a struct that encodes to the JSON printed at the end. All
latencies are milliseconds, measured on this machine's clock against the
server's event times (the server and the simulator share a clock when they
run on one machine; across machines, clock skew adds to them):

- ``time_to_assign``: order ``created_at`` -> its ``assigned`` event;
- ``created_to_offer``: start of ``POST /v1/orders`` -> a worker here receives the first offer;
- ``offer_delivery``: the offer's ``sent_at`` -> the worker receives it;
- ``assign_to_notified``: the ``assigned`` event -> a live-following customer receives it.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct

from simulator.fleet_report import FleetReport, fleet_report
from simulator.stats import Histogram, Snapshot, Summary

PHASES = ("ramp", "run", "grace", "closing")
STEADY_PHASES = ("run", "grace")


class OrdersReport(Struct, frozen=True):
    """Orders by how they ended; ``assigned`` counts every order that ever got a worker."""

    created: int
    assigned: int
    completed: int
    cancelled: int
    unassigned: int
    still_open: int
    in_progress: int
    create_failed: int
    followed_live: int
    cancels_requested: int
    cancels_refused: int
    # orders created by category ('-' for those by bare skill)
    by_category: dict[str, int] = msgspec.field(default_factory=dict)
    # customers' decisions on the approvals their orders' workflows asked for
    approvals: dict[str, int] = msgspec.field(default_factory=dict)


class OffersReport(Struct, frozen=True):
    """What the workers did with offers; ``answer_rate`` = accepted / received."""

    received: int
    accepted: int
    accepts_sent: int
    rejects_sent: int
    withdrawn: dict[str, int]
    answer_rate: float
    mean_pickup_distance_m: float


class WorkersReport(Struct, frozen=True):
    """The fleet's connections and work done; ``went_off`` counts workers leaving by reason
    (``shift``: end of a shift, ``outage``: a district outage)."""

    configured: int
    connects: int
    reconnects: int
    steps: dict[str, int]
    jobs_cancelled: int
    went_off: dict[str, int]
    jobs_handed_back: int = 0
    hand_backs_refused: int = 0  # past the job's point of no return: it carried on
    ratings_given: int = 0  # by the customers, of completed orders
    tips_given: int = 0


class LatencyReport(Struct, frozen=True):
    """Latency distributions in milliseconds. ``time_to_assign_from_events`` says how many
    assignment times are the ``assigned`` event's own (the rest: the accept ack's arrival)."""

    time_to_assign: Summary
    time_to_assign_from_events: int
    created_to_offer: Summary
    offer_delivery: Summary
    assign_to_notified: Summary


class LocationReport(Struct, frozen=True):
    """Location frames sent (and skipped because a socket was congested)."""

    reports: int
    per_s: float
    skipped: int


class PhaseReport(Struct, frozen=True):
    """The simulator during one phase: wall time, CPU (percent of one core, all
    processes together) and how late its scheduled actions ran."""

    wall_s: float
    cpu_s: float
    cpu_percent: float
    lag_ms: Summary


class SimulatorReport(Struct, frozen=True):
    """How well the simulator itself kept up. ``lag_ms`` covers the steady state
    (placing orders and the grace period); ``phases`` has ramp, run, grace and closing."""

    procs: int
    lag_ms: Summary
    cpu_s: float
    cpu_percent: float
    phases: dict[str, PhaseReport]


class Report(Struct, frozen=True):
    """The whole end-of-run report."""

    scenario: str
    seed: int
    url: str
    duration_s: float
    elapsed_s: float
    interrupted: bool
    orders: OrdersReport
    offers: OffersReport
    workers: WorkersReport
    fleet: FleetReport
    latency_ms: LatencyReport
    location: LocationReport
    errors: dict[str, int]
    simulator: SimulatorReport
    # stopped at the first error that made the rest pointless (its code is in ``errors``)
    halted: bool = False

    def to_json(self) -> bytes:
        """The report as indented JSON."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2)


def _summary(snap: Snapshot, name: str) -> Summary:
    return snap.histograms.get(name, Histogram()).summary()


def _prefixed(counters: dict[str, int], prefix: str) -> dict[str, int]:
    """The counters whose names start with ``prefix``, without it, sorted by name."""
    return {k.removeprefix(prefix): v for k, v in sorted(counters.items()) if k.startswith(prefix)}


def _orders(c: dict[str, int]) -> OrdersReport:
    return OrdersReport(
        created=c.get("orders_created", 0),
        assigned=c.get("orders_ever_assigned", 0),
        completed=c.get("orders_completed", 0),
        cancelled=c.get("orders_cancelled", 0),
        unassigned=c.get("orders_unassigned", 0),
        still_open=c.get("orders_open", 0),
        in_progress=c.get("orders_assigned", 0),
        create_failed=c.get("orders_create_failed", 0),
        followed_live=c.get("live_follows", 0),
        cancels_requested=c.get("cancels_requested", 0),
        cancels_refused=c.get("cancels_refused", 0),
        by_category=_prefixed(c, "orders_category_"),
        approvals=_prefixed(c, "approvals_"),
    )


def _offers(snap: Snapshot) -> OffersReport:
    c = snap.counters
    received, accepted = c.get("offers_received", 0), c.get("offers_accepted", 0)
    return OffersReport(
        received=received,
        accepted=accepted,
        accepts_sent=c.get("accepts_sent", 0),
        rejects_sent=c.get("rejects_sent", 0),
        withdrawn=_prefixed(c, "offers_withdrawn_"),
        answer_rate=round(accepted / received, 3) if received else 0.0,
        mean_pickup_distance_m=_summary(snap, "pickup_distance_m").mean,
    )


def _latency(snap: Snapshot) -> LatencyReport:
    return LatencyReport(
        time_to_assign=_summary(snap, "time_to_assign_ms"),
        time_to_assign_from_events=snap.counters.get("assign_times_from_events", 0),
        created_to_offer=_summary(snap, "created_to_offer_ms"),
        offer_delivery=_summary(snap, "offer_delivery_ms"),
        assign_to_notified=_summary(snap, "assign_to_notified_ms"),
    )


def build_report(
    snap: Snapshot, *, scenario: str, seed: int, url: str, workers: int, procs: int,
    duration_s: float, elapsed_s: float,
) -> Report:  # fmt: skip
    """The report for one run from the merged snapshot of all its processes."""
    c = snap.counters
    fleet = WorkersReport(
        configured=workers,
        connects=c.get("connects", 0),
        reconnects=c.get("reconnects", 0),
        steps=_prefixed(c, "steps_"),
        jobs_cancelled=c.get("jobs_cancelled", 0),
        jobs_handed_back=c.get("jobs_handed_back", 0),
        hand_backs_refused=c.get("hand_backs_refused", 0),
        ratings_given=c.get("ratings_given", 0),
        tips_given=c.get("tips_given", 0),
        went_off=_prefixed(c, "off_"),
    )
    reports = c.get("location_reports", 0)
    per_s = round(reports / elapsed_s, 1) if elapsed_s else 0.0
    location = LocationReport(reports, per_s, c.get("location_skipped", 0))
    return Report(
        scenario, seed, url, duration_s, round(elapsed_s, 2), bool(c.get("interrupted")),
        _orders(c), _offers(snap), fleet, fleet_report(c),
        _latency(snap), location, dict(sorted(snap.errors.items())),
        _simulator(snap, procs, elapsed_s), bool(c.get("halted")),
    )  # fmt: skip


def _simulator(snap: Snapshot, procs: int, elapsed_s: float) -> SimulatorReport:
    c = snap.counters
    phases = {}
    for phase in PHASES:
        wall_s = c.get(f"wall_ms_{phase}", 0) / 1000 / procs  # every process counts its own
        cpu_s = c.get(f"cpu_ms_{phase}", 0) / 1000
        percent = round(100 * cpu_s / wall_s, 1) if wall_s else 0.0
        lag = _summary(snap, f"scheduler_lag_{phase}_ms")
        phases[phase] = PhaseReport(round(wall_s, 2), round(cpu_s, 2), percent, lag)
    steady = Histogram()
    for phase in STEADY_PHASES:
        steady.add(snap.histograms.get(f"scheduler_lag_{phase}_ms", Histogram()))
    cpu_percent = round(100.0 * snap.cpu_s / elapsed_s, 1) if elapsed_s else 0.0
    return SimulatorReport(procs, steady.summary(), round(snap.cpu_s, 2), cpu_percent, phases)
