"""The chaos run, short: a minute of orders while nodes and Redis are killed.

``dispatch chaos`` runs its own Redis, three nodes and a 1,000-worker
simulator, kills a node every few seconds, kills Redis once and stops it
once, then checks the invariants in Redis. The full ten-minute run and its
figures are in the README.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.chaos_check import Faults, Findings, _followers

pytestmark = pytest.mark.slow


def test_a_minute_of_faults_breaks_no_invariant(tmp_path: Path) -> None:
    """No acknowledged order lost outside the AOF window, none stuck or assigned twice, no
    worker over capacity, every follower saw every event, killed nodes' workers are back."""
    out = tmp_path / "chaos.json"
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "chaos", "--quick", "--workdir", str(tmp_path / "run"),
         "--out", str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    findings, faults = result["findings"], result["faults"]
    assert result["violations"] == []
    assert len(faults["node_kills"]) >= 3
    assert len(faults["redis_kills"]) == 1 and len(faults["redis_stops"]) == 1
    assert findings["orders_acked"] > 500 and findings["followers_whole"] > 50
    assert findings["killed_sessions"] > 500


def test_events_a_failed_over_master_dropped_are_told_apart() -> None:
    """On a cluster, a follower told of an event that Redis no longer has counts as a
    failover loss only when the event is stamped in a master's fault window (Redis
    Cluster drops a stopped master's late writes); elsewhere, or on one Redis, it is a
    violation."""
    history = {"o1": [{"id": "1000-0"}, {"id": "2000-1"}]}
    told = [{"t": "follow", "id": "o1", "whole": True,
             "events": ["1000-0", "2000-1", "5200-2"]}]  # fmt: skip
    for faults, lost, wrong in (
        (Faults(redis_stops=[(3000, 5000)], cluster=True), 1, 0),  # 5200: within the second after
        (Faults(redis_stops=[(3000, 3500)], cluster=True), 0, 1),  # 5200: after the window
        (Faults(redis_stops=[(3000, 5000)], cluster=False), 0, 1),  # one Redis: no such loss
    ):
        found = Findings()
        _followers(found, told, history, faults.failover_windows())
        assert (len(found.followers_in_failover), len(found.followers_wrong)) == (lost, wrong)
