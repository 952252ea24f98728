"""The ``simulate`` command: options, the live display, the final report.

The lead's ``dispatch`` CLI adds these options to its ``simulate`` subcommand
with :func:`add_arguments` and calls :func:`run`; ``python -m simulator``
does the same on its own parser. The progress display goes to stderr, the
JSON report to stdout (or ``--report FILE``); this module is the one place
that writes to them directly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import httpx

from simulator import operator
from simulator.display import Display
from simulator.procs import prepare_process
from simulator.report import Report
from simulator.runner import city_names, load_city
from simulator.scenario import (
    DEV_SECRET,
    ScenarioError,
    SimConfig,
    load_scenario,
    scenario_names,
    with_overrides,
)
from simulator.simulation import simulate
from simulator.summary import summary

EPILOG = """\
A run ramps the fleet up, places orders for --duration seconds, waits up to
--grace seconds for open orders to end, then prints a few lines to read on
stderr (what is still in progress, and why) and a JSON report (orders by
outcome, answer rate, time to assign, offer delivery and notification
latencies, location reports per second, errors by code, reconnects, the
fleet by kind of worker with its earnings and their spread, and the
simulator's own scheduler lag and CPU). Ctrl-C ends the run early and still
prints the report (marked "interrupted"); a second Ctrl-C stops at once.

A server that does not serve the run's city (unknown_city) stops the run at
once, with the fix on stderr.

Exit status: 0 when the run happened, 1 when the server refused the city, no
worker could connect or no order could be created, 2 for a bad scenario or
option, 130 when interrupted.

Everything else (vehicles and speeds, accept probability, response delays,
kinds of worker, late joiners, skills and service times, live-following,
cancelling, rating and tipping shares, shifts, district outages, categories
to put in place) is set in the scenario file: see the commented files in
simulator/scenarios/ and the fields of SimConfig in simulator/scenario.py.
Built-in scenarios: {names}.
"""


# Options that override one scenario key: (option, type, metavar, scenario key, help).
_OVERRIDES: tuple[tuple[str, type, str, str, str], ...] = (
    ("--workers", int, "N", "workers.count", "number of simulated workers"),
    ("--rate", float, "PER_S", "orders.rate_per_s", "mean order arrivals per second, Poisson"),
    ("--duration", float, "S", "duration_s", "seconds of placing orders, after the ramp"),
    ("--grace", float, "S", "grace_s", "seconds to wait after the duration for open orders"),
    ("--ramp", float, "S", "workers.ramp_s", "seconds over which the workers connect, evenly"),
    ("--report-interval", float, "S", "workers.report_interval_s",
     "seconds between one worker's location reports"),
    ("--seed", int, "N", "seed", "random seed; the same seed replays the same fleet and orders"),
    ("--procs", int, "N", "procs",
     "spread the fleet and the order rate over N processes, each with its own city name "
     "(CITY-0, CITY-1, ...)"),
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every option of the simulate command to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG.format(names=", ".join(scenario_names()))
    add = parser.add_argument
    add(
        "--scenario",
        default="demo",
        metavar="NAME_OR_PATH",
        help="built-in scenario name or path to a scenario TOML file (default: %(default)s)",
    )
    add(
        "--url",
        default=os.environ.get("DISPATCH_URL", "http://127.0.0.1:8000"),
        help="base URL of the dispatch server, or several nodes' URLs comma-separated (clients "
        "spread over them and fail over); the ws:// URLs are derived from it "
        "(default: $DISPATCH_URL or %(default)s)",
    )
    add(
        "--secret",
        default=os.environ.get("DISPATCH_JWT_SECRET", DEV_SECRET),
        help="HS256 secret to mint worker and customer tokens with; must be the server's "
        "(default: $DISPATCH_JWT_SECRET or the development secret)",
    )
    for flag, kind, metavar, key, text in _OVERRIDES:
        add(flag, type=kind, metavar=metavar, help=f"{text} (overrides {key})")
    add(
        "--districts",
        metavar="GEOJSON",
        help="GeoJSON FeatureCollection of Polygon/MultiPolygon districts with "
        "properties.name and properties.weight, instead of the scenario's city",
    )
    add("--report", type=Path, metavar="FILE", help="write the JSON report to FILE, not stdout")
    add(
        "--journal",
        metavar="DIR",
        help="write what the clients were told (acknowledged orders, live events, reconnects) "
        "to DIR/journal-<proc>.jsonl, for checking the server afterwards",
    )
    add("--quiet", action="store_true", help="no progress display or summary on stderr")
    add(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of the simulator's own log messages on stderr (default: %(default)s)",
    )
    add("--list-scenarios", action="store_true", help="list the built-in scenarios and exit")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The scenario named by ``--scenario`` with the command-line overrides applied."""
    config = load_scenario(args.scenario)
    overrides = {
        key: getattr(args, flag[2:].replace("-", "_")) for flag, _, _, key, _ in _OVERRIDES
    }
    overrides["url"] = args.url.rstrip("/")
    overrides["secret"] = args.secret
    overrides["journal"] = args.journal
    if args.districts:
        overrides["districts"] = str(Path(args.districts).resolve())
    config = with_overrides(config, overrides)
    load_city(config)  # fail now on a bad district file or outage district
    return config


def run(args: argparse.Namespace) -> int:
    """Run the simulate command; returns the process exit status."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if args.list_scenarios:
        for name in scenario_names():
            scenario = load_scenario(name)
            sys.stdout.write(f"{name} (city {scenario.city}): {scenario.description}\n")
        return 0
    try:
        config = config_from_args(args)
    except ScenarioError as exc:
        sys.stderr.write(f"simulate: {exc}\n")
        return 2
    display = None if args.quiet else Display(sys.stderr)
    served = None
    try:
        with asyncio.Runner(loop_factory=prepare_process()) as runner:
            report = runner.run(simulate(config, display.show if display else None))
            if report.halted:
                served = runner.run(_served_cities(config))
    finally:
        if display is not None:
            display.close()
    write_report(report, args.report)
    if "unknown_city" in report.errors:
        sys.stderr.write(refused_city_hint(config, served))
    elif display is not None:
        sys.stderr.write(summary(report, config) + "\n")
    return exit_status(report)


async def _served_cities(config: SimConfig) -> list[str] | None:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        return await operator.served_cities(config, http)


def refused_city_hint(config: SimConfig, served: list[str] | None) -> str:
    """What to do when the server refused the run's city: serve it, or run a scenario
    in a city the server serves (``served``, when it said)."""
    wanted = ",".join(city_names(config))
    text = f"simulate: stopped: the server at {config.urls[0]} does not serve city {wanted}"
    if served is None:
        return f"{text}; start it with DISPATCH_CITIES={wanted}\n"
    fitting = [n for n in scenario_names() if load_scenario(n).city in served]
    text += f" (it serves {', '.join(served)}); start it with DISPATCH_CITIES={wanted}"
    if fitting:
        text += f", or pick a scenario in a city it serves: --scenario {' | '.join(fitting)}"
    return text + "\n"


def write_report(report: Report, path: Path | None) -> None:
    """Write the JSON report to ``path``, or to stdout."""
    text = report.to_json().decode() + "\n"
    if path is None:
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def exit_status(report: Report) -> int:
    """130 when interrupted; 1 when the server was not usable (it refused the city, no worker
    connected, or every order failed); else 0."""
    if report.interrupted:
        return 130
    if report.halted:
        return 1
    if report.workers.configured and not report.workers.connects:
        return 1
    if report.orders.create_failed and not report.orders.created:
        return 1
    return 0
