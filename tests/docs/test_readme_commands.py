"""The README's ``dispatch simulate`` commands, run as written (shortened) against a
server started as the README starts it: default settings, so city ``metro``."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support import UNIT, ServerProcess, documented_env, repo_root


def simulate(server: ServerProcess, *args: str) -> tuple[dict[str, Any], str, int]:
    """``dispatch simulate ARGS --url URL`` with the README's environment: the JSON
    report, what it wrote on stderr, and its exit status."""
    command = [sys.executable, "-m", "server.cli", "simulate", *args, "--url", server.url]
    done = subprocess.run(command, env=documented_env(), cwd=repo_root(), capture_output=True,
                          text=True, timeout=60 * UNIT)  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report, done.stderr, done.returncode


def test_the_default_scenario_runs_on_a_default_server(documented: ServerProcess) -> None:
    """``dispatch simulate`` (the demo scenario) runs on a default server, nothing refused."""
    report, stderr, status = simulate(documented, "--duration", "2", "--grace", f"{2 * UNIT}")
    assert status == 0, stderr[-3000:]
    assert report["workers"]["connects"] == report["workers"]["configured"] == 50
    assert report["orders"]["created"] > 0 and report["orders"]["create_failed"] == 0
    assert "unknown_city" not in report["errors"], report["errors"]
    assert "demo finished in" in stderr


def test_a_city_the_server_does_not_serve_stops_the_run_with_the_fix(
    documented: ServerProcess,
) -> None:
    """A city the server does not serve stops the run at once with the fix on stderr."""
    report, stderr, status = simulate(documented, "--scenario", "ranking", "--quiet")
    assert status == 1
    assert report["halted"] and report["elapsed_s"] < 5 * UNIT, report
    assert report["errors"]["unknown_city"] < 10
    assert "does not serve city ranked (it serves metro)" in stderr, stderr
    assert "DISPATCH_CITIES=ranked" in stderr and "--scenario demo |" in stderr


def test_a_short_lunch_rush_says_what_is_in_progress_and_why(documented: ServerProcess) -> None:
    """A lunch rush shorter than its jobs counts those in progress and says why."""
    report, stderr, status = simulate(
        documented, "--scenario", "lunch-rush", "--workers", "40", "--ramp", "1",
        "--duration", "2", "--grace", f"{2 * UNIT}",
    )  # fmt: skip
    assert status == 0, stderr[-3000:]
    in_progress = report["orders"]["in_progress"]
    assert report["orders"]["completed"] == 0 and in_progress > 0, report["orders"]
    assert "lunch-rush finished in" in stderr
    assert f"{in_progress} order(s) still in progress" in stderr, stderr[-2000:]
    assert "to drive" in stderr and "0.5-60.0 min on site" in stderr
    assert "a longer --grace" in stderr
