"""Moving on a street grid: Manhattan-style travel between intersections.

The city is overlaid with a square grid of streets (``block_m`` apart, 100 m
by default). A :class:`Mover` always stands on an intersection or part-way
along one block; it never turns back in the middle of a block. Travelling to
a target it takes one block at a time, choosing east-west or north-south at
each intersection with odds proportional to what remains on each axis, so
its path is a random staircase whose length is always the Manhattan
distance. Position is computed lazily: nothing happens between calls, and
:meth:`Mover.advance_to` catches up in one go. Arrival times are known in
advance (:meth:`Mover.head_to`), so the caller can schedule "arrived" exactly.

Pure: time and randomness come in as arguments.
"""

from __future__ import annotations

import math
import random

from simulator.geo import BBox, Projection

Node = tuple[int, int]

# Below this many metres a block counts as fully travelled (float rounding).
_EPSILON_M = 1e-6


class Grid:
    """The street grid over a bounding box: intersections (i, j) at (i * block_m, j * block_m)."""

    def __init__(self, bbox: BBox, projection: Projection, block_m: float = 100.0) -> None:
        self.projection = projection
        self.block_m = block_m
        x0, y0 = projection.to_xy(bbox.min_lat, bbox.min_lng)
        x1, y1 = projection.to_xy(bbox.max_lat, bbox.max_lng)
        self.i_range = (math.ceil(x0 / block_m), math.floor(x1 / block_m))
        self.j_range = (math.ceil(y0 / block_m), math.floor(y1 / block_m))

    def node(self, lat: float, lng: float) -> Node:
        """The intersection nearest to a point, kept inside the grid."""
        x, y = self.projection.to_xy(lat, lng)
        i = min(max(round(x / self.block_m), self.i_range[0]), self.i_range[1])
        j = min(max(round(y / self.block_m), self.j_range[0]), self.j_range[1])
        return i, j

    def latlng(self, x: float, y: float) -> tuple[float, float]:
        """The (lat, lng) of a point given in metres."""
        return self.projection.to_latlng(x, y)

    def near(self, node: Node, radius_blocks: int, rng: random.Random) -> Node:
        """A random intersection up to ``radius_blocks`` away on each axis, in the grid."""
        i = node[0] + rng.randint(-radius_blocks, radius_blocks)
        j = node[1] + rng.randint(-radius_blocks, radius_blocks)
        i = min(max(i, self.i_range[0]), self.i_range[1])
        j = min(max(j, self.j_range[0]), self.j_range[1])
        return i, j


class Mover:
    """One vehicle on the grid. ``speed`` is in metres per second."""

    __slots__ = ("done", "grid", "leg", "node", "rng", "speed", "t", "target")

    def __init__(self, grid: Grid, node: Node, now: float, rng: random.Random) -> None:
        self.grid = grid
        self.rng = rng
        self.node = node
        self.leg: Node | None = None  # the unit step being travelled, if any
        self.done = 0.0  # metres travelled along ``leg``
        self.target: Node | None = None
        self.speed = 0.0
        self.t = now

    @property
    def xy(self) -> tuple[float, float]:
        """Where the mover is, in metres."""
        g = self.grid.block_m
        x, y = self.node[0] * g, self.node[1] * g
        if self.leg is not None:
            x += self.leg[0] * self.done
            y += self.leg[1] * self.done
        return x, y

    def latlng(self) -> tuple[float, float]:
        """Where the mover is, in degrees."""
        return self.grid.latlng(*self.xy)

    @property
    def arrived(self) -> bool:
        """Whether the mover stands on its target (or has none)."""
        return self.leg is None and (self.target is None or self.target == self.node)

    def head_to(self, target: Node, speed: float, now: float) -> float:
        """Start travelling to ``target`` at ``speed``; returns the seconds until arrival."""
        self.advance_to(now)
        self.target, self.speed = target, speed
        g = self.grid.block_m
        start, metres = self.node, 0.0
        if self.leg is not None:
            start = (self.node[0] + self.leg[0], self.node[1] + self.leg[1])
            metres = g - self.done
        metres += g * (abs(target[0] - start[0]) + abs(target[1] - start[1]))
        return metres / speed if metres else 0.0

    def advance_to(self, now: float) -> None:
        """Move along the route for the time elapsed since the last call."""
        budget = self.speed * max(0.0, now - self.t)
        self.t = now
        g = self.grid.block_m
        while budget > 0:
            if self.leg is None:
                self.leg = self._next_leg()
                if self.leg is None:
                    return
            step = min(budget, g - self.done)
            self.done += step
            budget -= step
            if g - self.done <= _EPSILON_M:
                self.node = (self.node[0] + self.leg[0], self.node[1] + self.leg[1])
                self.leg, self.done = None, 0.0

    def stop_at_target(self, now: float) -> None:
        """Catch up to ``now`` and stand exactly on the target (absorbs float rounding)."""
        self.advance_to(now)
        if self.target is not None:
            self.node, self.leg, self.done = self.target, None, 0.0

    def _next_leg(self) -> Node | None:
        """The next unit step towards the target: one stair of a random staircase."""
        if self.target is None:
            return None
        dx, dy = self.target[0] - self.node[0], self.target[1] - self.node[1]
        if dx == 0 and dy == 0:
            return None
        if dy == 0 or (dx != 0 and self.rng.random() * (abs(dx) + abs(dy)) < abs(dx)):
            return (1 if dx > 0 else -1), 0
        return 0, (1 if dy > 0 else -1)
