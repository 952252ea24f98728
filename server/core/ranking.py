"""Candidate ranking and choice: which workers get an order's offer.

Pure functions. The store finds the workers: ``tick.lua`` widens the radius
step by step and hands over the candidates of the first step that holds any
(available, fresh, skilled, on a live node, not yet tried), nearest first.
This module decides among them, so the policy can grow (performance, idle
time, fairness) without touching Redis.
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


def choose(
    candidates: Sequence[Candidate], *, mode: OfferMode, broadcast_size: int
) -> list[Candidate]:
    """The workers to offer the order to, best first: one in sequential mode,
    up to ``broadcast_size`` in broadcast mode; empty when nobody qualifies."""
    ranked = sorted(candidates, key=score)
    size = 1 if mode is OfferMode.SEQUENTIAL else broadcast_size
    return ranked[:size]
