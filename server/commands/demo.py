"""``dispatch demo``: one command that shows the whole system working.

Starts ``dispatch serve`` in a child process with its own private Redis in a
temporary directory, runs the simulator's ``demo`` scenario against it (a
small fleet completing real orders, with a live progress display), prints the
simulator's summary (``simulator/summary.py``, as ``dispatch simulate`` does)
and keeps its report, and stops everything. It ends by itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from server.process.embedded_redis import stop_process

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
        if report.exists():  # the simulator printed its summary; keep the details
            kept = Path(args.report)
            kept.write_text(report.read_text())
            sys.stdout.write(f"full report: {kept}\n")
        return status
