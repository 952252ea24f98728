"""Candidate ranking and choice: which workers get an order's offer.

Pure functions. The store finds the workers (available, fresh, skilled, not
yet tried, nearest first within the widest radius); this module decides, so the
policy can grow (performance, idle time, fairness) without touching Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from protocol.messages import OfferMode


class Candidate(NamedTuple):
    """A worker that could take the order, as the geo search found it."""

    worker_id: str
    distance_m: float


def score(candidate: Candidate) -> float:
    """Lower is better. Distance alone for now."""
    return candidate.distance_m


def within_first_step(
    candidates: Sequence[Candidate], radius_steps_m: Sequence[float]
) -> list[Candidate]:
    """The candidates inside the smallest radius step that holds any: the
    search widens one step at a time, and a nearer ring is exhausted first."""
    for radius in radius_steps_m:
        ring = [c for c in candidates if c.distance_m <= radius]
        if ring:
            return ring
    return []


def choose(
    candidates: Sequence[Candidate],
    *,
    radius_steps_m: Sequence[float],
    mode: OfferMode,
    broadcast_size: int,
) -> list[Candidate]:
    """The workers to offer the order to, best first: one in sequential mode,
    up to ``broadcast_size`` in broadcast mode; empty when nobody qualifies."""
    ranked = sorted(within_first_step(candidates, radius_steps_m), key=score)
    size = 1 if mode is OfferMode.SEQUENTIAL else broadcast_size
    return ranked[:size]
