"""The few lines a person reads at the end of a run, below the progress display.

``dispatch simulate`` and ``dispatch demo`` both print :func:`summary` of the
report. When orders were still in progress (a worker had them) or open (none
had them yet) as the run ended, it says why from the scenario: how long its
jobs take (the drive to the pickup at the fleet's speeds, then the time on
site) against how long the run waited after its last order, and what to
change. The JSON report has every figure; this is only what to read first.

Pure. Imports nothing from ``server``.
"""

from __future__ import annotations

from simulator.report import Report
from simulator.scenario import SimConfig
from simulator.stats import Summary


def _ms(stats: Summary) -> str:
    return f"p50 {stats.p50:.1f} ms, p99 {stats.p99:.1f} ms"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "none"


def summary(report: Report, config: SimConfig) -> str:
    """What the run did, a line a topic, ending with why orders were unfinished (if any)."""
    orders, lat, offers, fleet = report.orders, report.latency_ms, report.offers, report.fleet
    categories = ", ".join(f"{'bare skill' if k == '-' else k} {n}"
                           for k, n in orders.by_category.items())  # fmt: skip
    approvals = "".join(f"; {n} approvals {k}" for k, n in orders.approvals.items())
    return "\n".join([
        "",
        f"{report.scenario} finished in {report.elapsed_s:.0f} s with "
        f"{report.workers.connects} workers",
        f"orders: {orders.created} created, {orders.completed} completed, "
        f"{orders.cancelled} cancelled, {orders.unassigned} unassigned, "
        f"{orders.in_progress} in progress, {orders.still_open} still open",
        f"by category: {categories or 'none'}{approvals}",
        f"steps the workers did: {_counts(report.workers.steps)}",
        f"offers: {offers.received} received by workers, {offers.accepted} accepted "
        f"(answer rate {offers.answer_rate:.0%}), mean pickup distance "
        f"{offers.mean_pickup_distance_m:.0f} m",
        f"order created -> offer on the worker's phone: {_ms(lat.created_to_offer)}",
        f"offer sent -> received: {_ms(lat.offer_delivery)}",
        f"time to assign (includes the simulated workers' answer delay): "
        f"{_ms(lat.time_to_assign)}",
        f"accept -> customer notified live: {_ms(lat.assign_to_notified)}",
        f"workers earned {fleet.earned_total} (minor units), spread (Gini) "
        f"{fleet.earnings_gini}",
        f"errors: {_counts(report.errors)}",
        *unfinished(report, config),
    ])  # fmt: skip


def unfinished(report: Report, config: SimConfig) -> list[str]:
    """Lines saying why orders were still in progress or open at the end, if any were."""
    orders, lines = report.orders, []
    if orders.in_progress:
        lines.append(
            f"{orders.in_progress} order(s) still in progress, each with a worker who had not "
            f"finished: a job here takes {_job_time(report, config)}, and the run waited only "
            f"{config.grace_s:g} s after its last order; a longer --grace lets them complete"
        )
    if orders.still_open:
        lines.append(
            f"{orders.still_open} order(s) still open: no worker had taken them yet (every "
            "nearby worker busy, or their offers unanswered); the server goes on looking "
            "for up to its max_dispatch_s"
        )
    return lines


def _job_time(report: Report, config: SimConfig) -> str:
    """How long one job takes: the drive to the pickup, then the time on site (and the
    drive to a drop-off, for the skills that have one)."""
    speeds = [s for v in config.workers.vehicles.values() if v.share > 0 for s in v.speed_kmh]
    slow, fast = min(speeds), max(speeds)
    metres = report.offers.mean_pickup_distance_m
    at_1_kmh_s = metres * 3.6 / config.speed_factor  # the drive's seconds at 1 km/h
    forward = f", fast-forwarded {config.speed_factor:g}x" if config.speed_factor != 1 else ""
    skills = {name: s for name, s in config.skills.items() if s.order_weight > 0}
    on_site = _span(min(s.service_s[0] for s in skills.values()),
                    max(s.service_s[1] for s in skills.values()))  # fmt: skip
    dropoff = sorted(name for name, s in skills.items() if s.dropoff_km is not None)
    and_on = f" (and a drive to the drop-off for {', '.join(dropoff)})" if dropoff else ""
    return (
        f"{_span(at_1_kmh_s / fast, at_1_kmh_s / slow)} to drive {metres:.0f} m to the pickup "
        f"({slow:g}-{fast:g} km/h{forward}), then {on_site} on site{and_on}"
    )


def _span(low_s: float, high_s: float) -> str:
    """``30-90 s`` or ``2.1-4.8 min``: seconds below two minutes, else minutes."""
    if high_s < 120:
        return f"{low_s:.0f}-{high_s:.0f} s"
    return f"{low_s / 60:.1f}-{high_s / 60:.1f} min"
