"""Flat-earth geometry for one city: degrees to metres and back, polygons.

A city is at most a few tens of kilometres across, so an equirectangular
projection around the city's centre is accurate to well under a metre per
kilometre, which is all a simulator needs. Pure functions and small value
types only; imports nothing from ``server`` or the rest of the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180.0

LngLat = tuple[float, float]
"""A vertex as GeoJSON writes it: (longitude, latitude)."""

Ring = Sequence[LngLat]


class BBox(NamedTuple):
    """A box in degrees: south-west and north-east corners."""

    min_lat: float
    min_lng: float
    max_lat: float
    max_lng: float

    def contains(self, lat: float, lng: float) -> bool:
        """Whether the point lies inside the box (edges included)."""
        return self.min_lat <= lat <= self.max_lat and self.min_lng <= lng <= self.max_lng

    @property
    def centre(self) -> tuple[float, float]:
        """The middle of the box as (lat, lng)."""
        return (self.min_lat + self.max_lat) / 2, (self.min_lng + self.max_lng) / 2

    @classmethod
    def around(cls, rings: Sequence[Ring]) -> BBox:
        """The smallest box holding every vertex of ``rings``."""
        lngs = [v[0] for ring in rings for v in ring]
        lats = [v[1] for ring in rings for v in ring]
        return cls(min(lats), min(lngs), max(lats), max(lngs))

    def union(self, other: BBox) -> BBox:
        """The smallest box holding both boxes."""
        return BBox(
            min(self.min_lat, other.min_lat),
            min(self.min_lng, other.min_lng),
            max(self.max_lat, other.max_lat),
            max(self.max_lng, other.max_lng),
        )


class Projection:
    """Equirectangular projection around one origin: (lat, lng) <-> (x east, y north) in metres."""

    def __init__(self, origin_lat: float, origin_lng: float) -> None:
        self.origin_lat = origin_lat
        self.origin_lng = origin_lng
        self.m_per_deg_lng = M_PER_DEG_LAT * math.cos(math.radians(origin_lat))

    def to_xy(self, lat: float, lng: float) -> tuple[float, float]:
        """Metres east and north of the origin."""
        return (lng - self.origin_lng) * self.m_per_deg_lng, (lat - self.origin_lat) * M_PER_DEG_LAT

    def to_latlng(self, x: float, y: float) -> tuple[float, float]:
        """The (lat, lng) of a point ``x`` metres east and ``y`` north of the origin."""
        return self.origin_lat + y / M_PER_DEG_LAT, self.origin_lng + x / self.m_per_deg_lng


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def in_ring(lat: float, lng: float, ring: Ring) -> bool:
    """Whether the point is inside the closed ring (even-odd ray casting)."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lng < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def in_polygon(lat: float, lng: float, rings: Sequence[Ring]) -> bool:
    """Whether the point is inside a GeoJSON polygon: in its outer ring and in none of its holes."""
    if not rings or not in_ring(lat, lng, rings[0]):
        return False
    return not any(in_ring(lat, lng, hole) for hole in rings[1:])
