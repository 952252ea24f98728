"""``dispatch demo``: one command that shows the whole system working.

Starts ``dispatch serve`` in a child process with its own private Redis in a
temporary directory, runs the simulator's ``demo`` scenario against it (a
small fleet completing real orders, with a live progress display), prints the
simulator's report, and stops everything. It ends by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from server.embedded_redis import stop_process

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    """A port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(url: str) -> bool:
    """Whether ``url`` (a node's or a balancer's ``/readyz``) answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:  # refused, reset, a 503 (HTTPError), a timeout
        return False


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dispatch demo: the server exited with {proc.returncode}")
        if ready(f"{url}/readyz"):
            return
        time.sleep(0.1)
    raise SystemExit("dispatch demo: the server did not become healthy in time")


def run_demo(args: argparse.Namespace) -> int:
    """Serve, simulate, report, stop. Returns the simulator's exit status."""
    from simulator import cli as sim_cli
    from simulator import load_scenario
    from simulator.runner import city_names

    port = args.port or free_port()
    cities = ",".join(city_names(load_scenario(args.scenario)))
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="dispatch-demo-") as data_dir:
        env = {**os.environ, "DISPATCH_PORT": str(port), "DISPATCH_DATA_DIR": data_dir,
               "DISPATCH_JWT_SECRET": secret, "DISPATCH_LOG_LEVEL": "warning",
               "DISPATCH_CITIES": cities}  # fmt: skip
        env.pop("REDIS_URL", None)
        sys.stderr.write(f"starting a server on {url} with a private Redis in {data_dir}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"], env=env, stdin=subprocess.DEVNULL
        )
        try:
            _wait_healthy(url, proc)
            parser = argparse.ArgumentParser(prog="dispatch demo")
            sim_cli.add_arguments(parser)
            report = Path(data_dir) / "report.json"
            sim_args = parser.parse_args(
                ["--scenario", args.scenario, "--url", url, "--secret", secret,
                 "--report", str(report)]
            )  # fmt: skip
            status = sim_cli.run(sim_args)
        finally:
            stop_process(proc, 15)
        if report.exists():
            data = json.loads(report.read_text())
            kept = Path(args.report)
            kept.write_text(report.read_text())
            sys.stdout.write(summary(data) + f"\nfull report: {kept}\n")
        return status


def _ms(stats: dict[str, float]) -> str:
    return f"p50 {stats.get('p50', 0):.1f} ms, p99 {stats.get('p99', 0):.1f} ms"


def summary(report: dict[str, Any]) -> str:
    """A few lines a person reads after the demo."""
    orders, lat = report["orders"], report["latency_ms"]
    offers, workers = report["offers"], report["workers"]
    return "\n".join([
        "",
        f"demo finished in {report['elapsed_s']:.0f} s with {workers['connects']} workers",
        f"orders: {orders['created']} created, {orders['completed']} completed, "
        f"{orders['cancelled']} cancelled, {orders['unassigned']} unassigned, "
        f"{orders['still_open']} still open",
        "by category: " + ", ".join(f"{'bare skill' if k == '-' else k} {n}"
                                    for k, n in orders.get("by_category", {}).items())
        + "".join(f"; {n} approvals {k}" for k, n in orders.get("approvals", {}).items()),
        "steps the workers did: " + ", ".join(
            f"{k} {n}" for k, n in workers.get("steps", {}).items()),
        f"offers: {offers['received']} received by workers, {offers['accepted']} accepted "
        f"(answer rate {offers['answer_rate']:.0%}), mean pickup distance "
        f"{offers['mean_pickup_distance_m']:.0f} m",
        f"order created -> offer on the worker's phone: {_ms(lat['created_to_offer'])}",
        f"offer sent -> received: {_ms(lat['offer_delivery'])}",
        f"time to assign (includes the simulated workers' answer delay): "
        f"{_ms(lat['time_to_assign'])}",
        f"accept -> customer notified live: {_ms(lat['assign_to_notified'])}",
        f"workers earned {report['fleet']['earned_total']} (minor units), spread (Gini) "
        f"{report['fleet']['earnings_gini']}",
        f"errors: {report['errors'] or 'none'}",
    ])  # fmt: skip
