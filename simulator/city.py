"""The simulated city: named districts with demand weights, and sampling in them.

A :class:`City` is a set of districts (GeoJSON polygons in degrees) inside a
bounding box. Orders are placed by district weight, then at a uniformly
random point inside the chosen district; workers start the same way, so the
fleet sits where the demand is. :func:`default_city` is a made-up 10 x 10 km
city ("metro") around 52.52 N, 13.40 E; :func:`load_geojson` reads districts
from a GeoJSON FeatureCollection so real open data can be used.

Pure: randomness comes in as a :class:`random.Random`. Imports only
``simulator.geo``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from simulator.geo import BBox, LngLat, Projection, Ring, in_polygon

Polygon = Sequence[Ring]

# Rejection sampling gives up after this many misses (a sliver-thin polygon).
_MAX_TRIES = 10_000


class CityError(ValueError):
    """A district file is unusable; the message names the feature and the problem."""


@dataclass(frozen=True)
class District:
    """One named area of the city; ``weight`` is its relative share of the demand."""

    name: str
    weight: float
    polygons: tuple[Polygon, ...]
    bbox: BBox = field(init=False)

    def __post_init__(self) -> None:
        rings = [ring for polygon in self.polygons for ring in polygon[:1]]
        object.__setattr__(self, "bbox", BBox.around(rings))

    def contains(self, lat: float, lng: float) -> bool:
        """Whether the point lies in the district."""
        if not self.bbox.contains(lat, lng):
            return False
        return any(in_polygon(lat, lng, polygon) for polygon in self.polygons)

    def sample(self, rng: random.Random) -> tuple[float, float]:
        """A uniformly random (lat, lng) inside the district."""
        b = self.bbox
        for _ in range(_MAX_TRIES):
            lat = rng.uniform(b.min_lat, b.max_lat)
            lng = rng.uniform(b.min_lng, b.max_lng)
            if self.contains(lat, lng):
                return lat, lng
        raise CityError(f"district {self.name!r}: no point found inside it; is it degenerate?")


@dataclass(frozen=True)
class City:
    """Districts, their bounding box, and the projection used to move on a street grid."""

    districts: tuple[District, ...]
    bbox: BBox = field(init=False)
    projection: Projection = field(init=False)
    _cum_weights: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.districts:
            raise CityError("a city needs at least one district")
        if sum(d.weight for d in self.districts) <= 0:
            raise CityError("the district weights add up to zero")
        bbox = self.districts[0].bbox
        for d in self.districts[1:]:
            bbox = bbox.union(d.bbox)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "projection", Projection(*bbox.centre))
        weights = itertools.accumulate(d.weight for d in self.districts)
        object.__setattr__(self, "_cum_weights", tuple(weights))

    def pick_district(self, rng: random.Random) -> District:
        """A district chosen with probability proportional to its weight."""
        return rng.choices(self.districts, cum_weights=self._cum_weights)[0]

    def sample(self, rng: random.Random) -> tuple[float, float]:
        """A random (lat, lng): a district by weight, then a uniform point inside it."""
        return self.pick_district(rng).sample(rng)

    def district(self, name: str) -> District:
        """The district called ``name``; raises :class:`CityError` naming the known ones."""
        for d in self.districts:
            if d.name == name:
                return d
        known = ", ".join(d.name for d in self.districts)
        raise CityError(f"no district named {name!r} (known: {known})")

    def district_at(self, lat: float, lng: float) -> District | None:
        """The district the point lies in, if any."""
        return next((d for d in self.districts if d.contains(lat, lng)), None)


# The made-up default city: (name, weight, (west, south, east, north) as fractions of the box).
_METRO_CENTRE = (52.52, 13.40)
_METRO_HALF_SIZE_M = 5_000.0
_METRO_DISTRICTS: tuple[tuple[str, float, tuple[float, float, float, float]], ...] = (
    ("northgate", 1.0, (0.0, 2 / 3, 0.5, 1.0)),
    ("university", 1.5, (0.5, 2 / 3, 1.0, 1.0)),
    ("west-end", 1.0, (0.0, 1 / 3, 1 / 3, 2 / 3)),
    ("old-town", 3.0, (1 / 3, 1 / 3, 2 / 3, 2 / 3)),
    ("harbour", 1.5, (2 / 3, 1 / 3, 1.0, 2 / 3)),
    ("parkview", 0.5, (0.0, 0.0, 1 / 3, 1 / 3)),
    ("station", 2.0, (1 / 3, 0.0, 2 / 3, 1 / 3)),
    ("riverside", 1.0, (2 / 3, 0.0, 1.0, 1 / 3)),
)


def default_city() -> City:
    """The built-in 10 x 10 km city "metro" with eight rectangular districts."""
    proj = Projection(*_METRO_CENTRE)
    size = 2 * _METRO_HALF_SIZE_M

    def corner(fx: float, fy: float) -> LngLat:
        lat, lng = proj.to_latlng(fx * size - _METRO_HALF_SIZE_M, fy * size - _METRO_HALF_SIZE_M)
        return lng, lat

    districts = []
    for name, weight, (w, s, e, n) in _METRO_DISTRICTS:
        ring = [corner(w, s), corner(e, s), corner(e, n), corner(w, n), corner(w, s)]
        districts.append(District(name, weight, ((ring,),)))
    return City(tuple(districts))


def load_geojson(path: str | Path) -> City:
    """Districts from a GeoJSON FeatureCollection of Polygon/MultiPolygon features
    with ``properties.name`` (required) and ``properties.weight`` (default 1)."""
    try:
        doc = msgspec.json.decode(Path(path).read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise CityError(f"{path}: cannot read GeoJSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise CityError(f"{path}: expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise CityError(f"{path}: `features` must be a list")
    districts = [_district(f, f"{path}: feature {i}") for i, f in enumerate(features)]
    return City(tuple(districts))


def _district(feature: Any, where: str) -> District:
    """One district from one GeoJSON feature."""
    if not isinstance(feature, dict):
        raise CityError(f"{where}: not an object")
    props = feature.get("properties") or {}
    name = props.get("name")
    if not isinstance(name, str) or not name:
        raise CityError(f"{where}: `properties.name` must be a non-empty string")
    weight = props.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise CityError(f"{where} ({name}): `properties.weight` must be a number >= 0")
    geometry: dict[str, Any] = feature.get("geometry") or {}
    kind, coords = geometry.get("type"), geometry.get("coordinates") or ()
    polygons: tuple[Polygon, ...]
    try:
        if kind == "Polygon":
            polygons = (_polygon(coords),)
        elif kind == "MultiPolygon":
            polygons = tuple(_polygon(p) for p in coords)
        else:
            raise CityError(f"geometry type {kind!r} is not Polygon or MultiPolygon")
        if not polygons:
            raise CityError("no polygons")
    except (TypeError, ValueError, IndexError) as exc:
        raise CityError(f"{where} ({name}): bad geometry: {exc}") from exc
    return District(name, float(weight), polygons)


def _polygon(coords: Any) -> Polygon:
    """A polygon's rings as tuples of (lng, lat); raises ValueError on a malformed one."""
    rings = tuple(tuple((float(v[0]), float(v[1])) for v in ring) for ring in coords)
    if not rings or any(len(ring) < 4 for ring in rings):
        raise ValueError("every ring needs at least four positions")
    return rings
