"""Garbage-collector pauses of a process, for ``dispatch bench --gc-stats``.

The benchmark puts this directory on the server's ``PYTHONPATH``, so Python
imports this module at start-up (``sitecustomize``). It times every
collection through ``gc.callbacks`` and writes cumulative figures per
generation, as JSON, to ``$DISPATCH_BENCH_GC_FILE`` at most twice a second
(and after every full collection). It changes nothing else.
"""

from __future__ import annotations

import gc
import json
import os
import time

_PATH = os.environ.get("DISPATCH_BENCH_GC_FILE", "")
_started = [0.0]
_written = [0.0]
_stats = {g: {"count": 0, "total_ms": 0.0, "max_ms": 0.0} for g in (0, 1, 2)}


def _on_gc(phase: str, info: dict[str, int]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _started[0] = now
        return
    ms = (now - _started[0]) * 1000
    entry = _stats[info["generation"]]
    entry["count"] += 1
    entry["total_ms"] += ms
    entry["max_ms"] = max(entry["max_ms"], ms)
    if info["generation"] == 2 or now - _written[0] > 0.5:
        _written[0] = now
        tmp = f"{_PATH}.tmp"
        with open(tmp, "w") as f:
            json.dump({f"gen{g}": s for g, s in _stats.items()}, f)
        os.replace(tmp, _PATH)


if _PATH:
    gc.callbacks.append(_on_gc)
