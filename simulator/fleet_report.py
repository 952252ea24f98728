"""The report's fleet section: what each kind of worker did and earned.

Every simulated worker counts its own figures as ``wk.<worker>.<figure>``
(:mod:`simulator.worker`): its kind (``kind.<behaviour>``), whether it joined
late (``late``), offers, accepted, rejected, handed back, jobs completed, ms
busy and ms present; after the run the simulator adds what the server's
payouts say it earned (``earned``, minor units). :func:`fleet_report` sums
them by behaviour, for the late joiners (newcomers among workers with a
record), and gives the spread of earnings over the whole fleet (Gini).

Pure. Imports nothing from ``server``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from msgspec import Struct

FIGURES = ("offers", "accepted", "rejected", "handed_back", "jobs", "busy_ms", "present_ms",
           "earned")  # fmt: skip


class GroupReport(Struct, frozen=True):
    """Some workers' figures: sums, and per worker or as shares.
    ``acceptance`` = accepted / offers; ``utilisation`` = busy / present time."""

    workers: int
    offers: int
    accepted: int
    rejected: int
    handed_back: int
    jobs: int
    acceptance: float
    jobs_per_worker: float
    earned_per_worker: float
    utilisation: float


class FleetReport(Struct, frozen=True):
    """The fleet by behaviour, its late joiners, and the spread of earnings
    (``earnings_gini``: 0 when everyone earned the same, towards 1 when few
    earned it all)."""

    by_behaviour: dict[str, GroupReport]
    late_joiners: GroupReport
    earned_total: int
    earnings_gini: float
    earnings_read: bool  # whether the server's payouts could be read (else earned is 0)


def gini(amounts: Sequence[float]) -> float:
    """The Gini coefficient of non-negative amounts (0 for none, or all zero)."""
    ordered = sorted(max(0.0, a) for a in amounts)
    n, total = len(ordered), sum(ordered)
    if n == 0 or total == 0:
        return 0.0
    weighted = sum((i + 1) * a for i, a in enumerate(ordered))
    return round(2 * weighted / (n * total) - (n + 1) / n, 3)


def _workers(counters: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Each worker's figures from the counters named ``wk.<worker>.<figure>``."""
    found: dict[str, dict[str, int]] = {}
    for name, value in counters.items():
        if name.startswith("wk."):
            worker, _, figure = name[3:].partition(".")
            found.setdefault(worker, {})[figure] = value
    return found


def _group(workers: Iterable[dict[str, int]]) -> GroupReport:
    rows = list(workers)
    sums = {f: sum(w.get(f, 0) for w in rows) for f in FIGURES}
    n = len(rows)
    return GroupReport(
        workers=n, offers=sums["offers"], accepted=sums["accepted"], rejected=sums["rejected"],
        handed_back=sums["handed_back"], jobs=sums["jobs"],
        acceptance=round(sums["accepted"] / sums["offers"], 3) if sums["offers"] else 0.0,
        jobs_per_worker=round(sums["jobs"] / n, 2) if n else 0.0,
        earned_per_worker=round(sums["earned"] / n, 1) if n else 0.0,
        utilisation=round(sums["busy_ms"] / sums["present_ms"], 3) if sums["present_ms"] else 0.0,
    )  # fmt: skip


def fleet_report(counters: Mapping[str, int]) -> FleetReport:
    """The fleet section from the run's merged counters."""
    workers = _workers(counters)
    kinds: dict[str, list[dict[str, int]]] = {}
    for figures in workers.values():
        kind = next((f[5:] for f in figures if f.startswith("kind.")), "-")
        kinds.setdefault(kind, []).append(figures)
    earned = [w.get("earned", 0) for w in workers.values()]
    return FleetReport(
        by_behaviour={kind: _group(rows) for kind, rows in sorted(kinds.items())},
        late_joiners=_group(w for w in workers.values() if w.get("late")),
        earned_total=sum(earned),
        earnings_gini=gini(earned),
        earnings_read=counters.get("payouts_read", 0) > 0,
    )
