"""``dispatch demo``: one command that shows the whole system working.

Starts ``dispatch serve`` in a child process with its own private Redis in a
temporary directory, runs the simulator's ``demo`` scenario against it (a
small fleet completing real orders, with a live progress display), prints the
simulator's report, and stops everything. It ends by itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

READY_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dispatch demo: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("dispatch demo: the server did not become healthy in time")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(args: argparse.Namespace) -> int:
    """Serve, simulate, report, stop. Returns the simulator's exit status."""
    from simulator import cli as sim_cli

    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="dispatch-demo-") as data_dir:
        env = {**os.environ, "DISPATCH_PORT": str(port), "DISPATCH_DATA_DIR": data_dir,
               "DISPATCH_JWT_SECRET": secret, "DISPATCH_LOG_LEVEL": "warning"}  # fmt: skip
        env.pop("REDIS_URL", None)
        sys.stderr.write(f"starting a server on {url} with a private Redis in {data_dir}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"], env=env, stdin=subprocess.DEVNULL
        )
        try:
            _wait_healthy(url, proc)
            parser = argparse.ArgumentParser(prog="dispatch demo")
            sim_cli.add_arguments(parser)
            sim_args = parser.parse_args(
                ["--scenario", args.scenario, "--url", url, "--secret", secret]
            )
            return sim_cli.run(sim_args)
        finally:
            _stop(proc)
