"""A journal of what the simulated clients were told, for checking the server afterwards.

With ``--journal DIR`` every simulator process appends JSON lines to
``DIR/journal-<proc>.jsonl``:

- ``{"t": "order", "id": ..., "at": ms}``: the server acknowledged an order
  (answered 201) at ``at`` (this machine's clock);
- ``{"t": "follow", "id": ..., "events": [...], "close": code, "whole": bool}``:
  a live follower's socket ended; ``events`` are the event ids it got
  (snapshot first), ``whole`` whether it stayed connected from the snapshot
  to the server's close;
- ``{"t": "lost", "worker": ..., "at": ms, "node": ...}``: a worker's session
  with server node ``node`` ended while the run went on;
- ``{"t": "back", "worker": ..., "lost_at": ms, "at": ms, "node": ...}``: a
  worker whose session was lost got a ``welcome`` again (from ``node``).

``dispatch chaos`` reads these to prove that no acknowledged order was lost,
that followers saw every event once, and how fast workers came back.
Imports only the standard library.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO


def now_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    """One process's journal file (line-buffered, so a killed run keeps what it wrote)."""

    def __init__(self, directory: str, proc: int) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = (Path(directory) / f"journal-{proc}.jsonl").open(
            "a", encoding="utf-8", buffering=1
        )

    def write(self, **fields: object) -> None:
        self._file.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def order(self, order_id: str) -> None:
        self.write(t="order", id=order_id, at=now_ms())

    def follow(self, order_id: str, events: list[str], close: int | None, whole: bool) -> None:
        self.write(t="follow", id=order_id, events=events, close=close, whole=whole)

    def lost(self, worker: str, at: int, node: str) -> None:
        self.write(t="lost", worker=worker, at=at, node=node)

    def back(self, worker: str, lost_at: int, node: str) -> None:
        self.write(t="back", worker=worker, lost_at=lost_at, at=now_ms(), node=node)

    def close(self) -> None:
        self._file.close()


def read(directory: str | Path) -> list[dict[str, object]]:
    """Every entry of every process's journal in ``directory``."""
    entries: list[dict[str, object]] = []
    for path in sorted(Path(directory).glob("journal-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries
