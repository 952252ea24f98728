"""Candidate ranking and choice: which workers get an order's offer. Pure.

The store finds the candidates: ``tick.lua`` widens the radius step by step
and hands over those of the first step that holds any (available, fresh,
skilled, on a live node, not yet tried), nearest first. The node adds what
it knows of each one's record, its :class:`Standing` (30-day figures, when
it last completed a job). This module decides among them by the order's
:class:`~protocol.catalogue.Ranking` (its category's weights, pinned on the
order; the defaults for an order by bare skill). Time and chance come in as
arguments.

*Cost* (lower is better), in kilometres' worth::

    distance      x km to the pickup
  + rating        x (5 - stars) / 4
  + acceptance    x (1 - acceptance)
  + cancellation  x cancellation rate
  - idle          x min(1, time since its last job / idle_full_s)

A figure not known yet (fewer samples than the server's minimum) counts as
:data:`PRIOR`'s, a typical worker's; a worker with no completed job in the
days kept counts as fully idle. Ties go to the nearer, then by id.

*Fairness.* A share (``fair_share``) of each broadcast's places, and of
sequential choices among near-equals (within ``near_km`` of the best cost),
goes to the candidates owed work: newcomers (too few samples to be judged),
else the one idle longest. So the best performers get most work and nobody
new or idle waits for ever.

*Late.* A worker whose cancellation rate is over ``late_over`` is offered an
order only once the order has looked for a worker for ``late_by_s``: later,
not never. The choice says when such held-back workers become candidates,
so a search that found only them can be retried then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec
from protocol.catalogue import Ranking
from protocol.messages import OfferMode

from server.core.pricing import round_half_up

DEFAULT = Ranking()


class Standing(NamedTuple):
    """What ranking weighs of a worker's record: its figures over the last 30
    days (None: too few samples yet), when it last completed a job (None: not
    in the days kept), and whether it is a newcomer (too few answered offers
    to be judged)."""

    rating: float | None = None
    acceptance: float | None = None
    cancellation: float | None = None
    last_job_at: int | None = None
    newcomer: bool = True


# What a figure not known yet counts as: a typical worker's.
PRIOR = Standing(rating=4.5, acceptance=0.8, cancellation=0.05)


class Candidate(NamedTuple):
    """A worker that could take the order, as the geo search found it, with its
    standing (a newcomer's until the node has read it)."""

    worker_id: str
    distance_m: float
    standing: Standing = Standing()


class Choice(NamedTuple):
    """The workers to offer the order to, best first, and (``later_at``, ms)
    when the workers held back for their cancellations become candidates, if
    any were."""

    chosen: list[Candidate]
    later_at: int | None = None


def idle_share(standing: Standing, now_ms: int, rules: Ranking) -> float:
    """How idle a worker is, from 0 (it just finished a job) to 1 (``idle_full_s``
    or more since, or no job in the days kept)."""
    if standing.last_job_at is None:
        return 1.0
    return min(1.0, max(0.0, (now_ms - standing.last_job_at) / (rules.idle_full_s * 1000)))


def cost(candidate: Candidate, now_ms: int, rules: Ranking = DEFAULT) -> float:
    """A candidate's cost: lower is offered first."""
    s = candidate.standing
    rating = PRIOR.rating if s.rating is None else s.rating
    acceptance = PRIOR.acceptance if s.acceptance is None else s.acceptance
    cancellation = PRIOR.cancellation if s.cancellation is None else s.cancellation
    assert rating is not None and acceptance is not None and cancellation is not None
    return (
        rules.distance * candidate.distance_m / 1000
        + rules.rating * (5 - rating) / 4
        + rules.acceptance * (1 - acceptance)
        + rules.cancellation * cancellation
        - rules.idle * idle_share(s, now_ms, rules)
    )


def is_late(candidate: Candidate, rules: Ranking) -> bool:
    """Whether a worker's cancellations hold it back from a fresh order."""
    rate = candidate.standing.cancellation
    return rate is not None and rate > rules.late_over


def owed(candidates: Sequence[Candidate], now_ms: int, rules: Ranking) -> list[Candidate]:
    """The candidates owed work, in the order they get it: the newcomers (in the
    order given), else the one idle longest."""
    newcomers = [c for c in candidates if c.standing.newcomer]
    if newcomers or not candidates:
        return newcomers
    return [max(candidates, key=lambda c: idle_share(c.standing, now_ms, rules))]


def urgent(rules: Ranking) -> Ranking:
    """The weights for an urgent order: the best now, nobody owed a place or held
    back."""
    return msgspec.structs.replace(rules, fair_share=0.0, late_by_s=0.0)


def choose(
    candidates: Sequence[Candidate], *, mode: OfferMode, broadcast_size: int,
    rules: Ranking = DEFAULT, now_ms: int = 0, since_ms: int = 0, luck: float = 1.0,
) -> Choice:  # fmt: skip
    """The workers to offer the order to: one in sequential mode, up to
    ``broadcast_size`` in broadcast mode; none when nobody qualifies.
    ``since_ms``: when the order started looking for a worker; ``luck``, a
    number drawn uniformly from [0, 1): below ``fair_share``, a sequential
    choice goes to a near-equal owed work."""
    later_at = since_ms + round(rules.late_by_s * 1000)
    held = now_ms < later_at and any(is_late(c, rules) for c in candidates)
    ranked = sorted(
        (c for c in candidates if not (held and is_late(c, rules))),
        key=lambda c: (cost(c, now_ms, rules), c.distance_m, c.worker_id),
    )
    if not ranked:
        chosen: list[Candidate] = []
    elif mode is OfferMode.SEQUENTIAL:
        chosen = [_one(ranked, now_ms, rules, luck)]
    else:
        chosen = _some(ranked, broadcast_size, now_ms, rules)
    return Choice(chosen, later_at if held else None)


def _one(ranked: list[Candidate], now_ms: int, rules: Ranking, luck: float) -> Candidate:
    """The best, or (a ``fair_share`` of the time) a near-equal owed work."""
    best = ranked[0]
    if luck >= rules.fair_share:
        return best
    bar = cost(best, now_ms, rules) + rules.near_km
    near = [c for c in ranked if cost(c, now_ms, rules) <= bar]
    return next(iter(owed(near, now_ms, rules)), best)


def _some(ranked: list[Candidate], size: int, now_ms: int, rules: Ranking) -> list[Candidate]:
    """The best ``size``, but for a ``fair_share`` of the places, which go to those
    owed work among the rest (then to the next best); in cost order."""
    fair = min(size, round_half_up(rules.fair_share * size))
    chosen, rest = ranked[: size - fair], ranked[size - fair :]
    for c in [*owed(rest, now_ms, rules), *rest]:
        if len(chosen) >= size:
            break
        if c not in chosen:
            chosen.append(c)
    return sorted(chosen, key=ranked.index)
