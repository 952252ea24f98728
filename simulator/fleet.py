"""The fleet: who each simulated worker is, and the random draws that drive it.

:func:`build_fleet` turns the scenario into one :class:`WorkerProfile` per
worker (skills, vehicle, speed, start position, token). Every worker has its
own :class:`random.Random` seeded from the scenario seed, the process index
and the worker's number, so a run is reproducible worker by worker however
the fleet is split over processes. :class:`World` bundles what every worker
of one process shares (clock, scheduler, metrics, order book, city).

Imports only ``simulator`` modules and the standard library.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulator.city import City
from simulator.journal import Journal
from simulator.movement import Grid, Node
from simulator.orders import OrderBook
from simulator.scenario import Behaviour, SimConfig, Skill
from simulator.scheduler import Scheduler
from simulator.stats import Metrics
from simulator.tokens import worker_token

KMH = 1000.0 / 3600.0


def rng_for(seed: int, proc: int, kind: str, number: int) -> random.Random:
    """An independent, reproducible random stream for one actor of one process."""
    return random.Random(f"{seed}/{proc}/{kind}/{number}")


@dataclass(frozen=True, slots=True)
class WorkerProfile:
    """One simulated worker: fixed for the whole run."""

    number: int
    worker_id: str
    token: str
    skills: tuple[str, ...]
    vehicle: str
    speed_mps: float
    start: Node
    seed: str
    behaviour: str = "steady"  # its kind (the scenario's workers.behaviours)
    late: bool = False  # it joins late_join_s after the ramp: a newcomer


@dataclass(slots=True)
class World:
    """What the workers and customers of one process share."""

    config: SimConfig
    city_name: str
    city: City
    grid: Grid
    scheduler: Scheduler
    metrics: Metrics
    book: OrderBook
    http_bases: tuple[str, ...]  # one per server node; clients spread over them
    journal: Journal | None = None
    stopping: bool = False
    # Ask the customer of an order to decide its pending step (set by the customers).
    decide: Callable[[str, str], None] | None = None
    # Tell the customer of an order that it was completed, and how well (its stars).
    completed: Callable[[str, int], None] | None = None

    @property
    def ws_bases(self) -> tuple[str, ...]:
        return tuple(
            b.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
            for b in self.http_bases
        )

    def skill(self, name: str) -> Skill | None:
        """The scenario's settings for a skill, if it has any."""
        return self.config.skills.get(name)


def build_fleet(
    config: SimConfig, proc: int, count: int, city_name: str, city: City, grid: Grid
) -> list[WorkerProfile]:
    """The profiles of this process's ``count`` workers."""
    ttl = config.duration_s + config.grace_s + 3600
    skills = sorted(config.skills)
    vehicles = sorted(config.workers.vehicles.items())
    kinds = quotas(config.workers.behaviours, count, rng_for(config.seed, proc, "kinds", 0))
    late = set(rng_for(config.seed, proc, "late", 0).sample(
        range(count), round(config.workers.late_share * count)))  # fmt: skip
    profiles = []
    for n in range(count):
        rng = rng_for(config.seed, proc, "worker", n)
        have = [s for s in skills if rng.random() < config.skills[s].worker_share]
        if not have:
            weights = [config.skills[s].worker_share + 1e-9 for s in skills]
            have = rng.choices(skills, weights=weights)
        name, vehicle = rng.choices(vehicles, weights=[v.share for _, v in vehicles])[0]
        speed = rng.uniform(*vehicle.speed_kmh) * KMH * config.speed_factor
        worker_id = f"{city_name}-w{n:05d}"
        token = worker_token(config.secret, worker_id, city_name, have, ttl)
        start = grid.node(*city.sample(rng))
        seed = f"{config.seed}/{proc}/behaviour/{n}"
        profiles.append(WorkerProfile(n, worker_id, token, tuple(have), name, speed, start, seed,
                                      kinds[n], n in late))  # fmt: skip
    return profiles


def quotas(shares: Mapping[str, Behaviour], count: int, rng: random.Random) -> list[str]:
    """``count`` behaviour names in proportion to their shares (largest remainders
    round), in a shuffled order: a small fleet has each kind as the scenario says."""
    total = sum(b.share for b in shares.values())
    exact = {name: b.share / total * count for name, b in sorted(shares.items())}
    whole = {name: int(x) for name, x in exact.items()}
    by_remainder = sorted(exact, key=lambda name: whole[name] - exact[name])
    for name in by_remainder[: count - sum(whole.values())]:
        whole[name] += 1
    names = [name for name, k in whole.items() for _ in range(k)]
    rng.shuffle(names)
    return names


def response_delay(config: SimConfig, rng: random.Random, factor: float = 1.0) -> float:
    """Seconds a worker takes to answer an offer: lognormal around the median (times
    its behaviour's ``factor``), capped at the scenario's ``max_s`` (times it too)."""
    d = config.workers.response_delay
    return min(rng.lognormvariate(math.log(d.median_s * factor), d.sigma), d.max_s * factor)


def span(rng: random.Random, bounds: tuple[float, float]) -> float:
    """A uniform draw from a ``[min, max]`` scenario range."""
    return rng.uniform(bounds[0], bounds[1])


def dropoff_node(grid: Grid, pickup: Node, km: tuple[float, float], rng: random.Random) -> Node:
    """A drop-off intersection at roughly ``km`` (Manhattan) from the pickup, inside the grid."""
    blocks = max(1, round(span(rng, km) * 1000.0 / grid.block_m))
    di = rng.randint(-blocks, blocks)
    dj = (blocks - abs(di)) * rng.choice((-1, 1))
    i = min(max(pickup[0] + di, grid.i_range[0]), grid.i_range[1])
    j = min(max(pickup[1] + dj, grid.j_range[0]), grid.j_range[1])
    return i, j
