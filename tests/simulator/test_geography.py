"""The simulator's geography and motion: city sampling, GeoJSON districts, the street
grid, Poisson arrivals and the fleet. No server needed."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path

import jwt
import msgspec
import pytest

from simulator.city import CityError, default_city, load_geojson
from simulator.customers import arrivals
from simulator.fleet import KMH, build_fleet, dropoff_node
from simulator.geo import Projection, in_polygon
from simulator.movement import Grid, Mover
from simulator.runner import load_city, slice_of
from simulator.scenario import (
    SimConfig,
    load_scenario,
    with_overrides,
)
from simulator.stats import percentile
from simulator.tokens import customer_token, worker_token

SAMPLE = Path(__file__).parent.parent.parent / "simulator" / "data" / "harbourtown.geojson"


def _binomial_ok(hits: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(hits - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


# ---------------------------------------------------------------- city


def test_default_city_samples_fall_inside_the_bbox_and_a_district() -> None:
    """Every sampled point is in the city's box and in some district."""
    city, rng = default_city(), random.Random(1)
    for _ in range(2_000):
        lat, lng = city.sample(rng)
        assert city.bbox.contains(lat, lng)
        assert city.district_at(lat, lng) is not None


def test_default_city_is_about_ten_km_square() -> None:
    """The built-in city is a ~10 x 10 km box around 52.52 N, 13.40 E."""
    city = default_city()
    proj = Projection(*city.bbox.centre)
    x0, y0 = proj.to_xy(city.bbox.min_lat, city.bbox.min_lng)
    x1, y1 = proj.to_xy(city.bbox.max_lat, city.bbox.max_lng)
    assert x1 - x0 == pytest.approx(10_000, rel=0.01)
    assert y1 - y0 == pytest.approx(10_000, rel=0.01)
    assert city.bbox.centre == pytest.approx((52.52, 13.40), abs=1e-6)


def test_sampling_follows_district_weights() -> None:
    """Points land in each district in proportion to its weight."""
    city, rng, n = default_city(), random.Random(2), 20_000
    seen = Counter(city.pick_district(rng).name for _ in range(n))
    total = sum(d.weight for d in city.districts)
    for d in city.districts:
        assert _binomial_ok(seen[d.name], n, d.weight / total), d.name


def test_unknown_district_error_names_the_known_ones() -> None:
    """Asking for a missing district says which exist."""
    with pytest.raises(CityError, match="old-town"):
        default_city().district("nowhere")


# ---------------------------------------------------------------- GeoJSON


def test_geojson_sample_loads_polygons_holes_and_multipolygons() -> None:
    """The sample file yields its five districts with their weights."""
    city = load_geojson(SAMPLE)
    assert {d.name: d.weight for d in city.districts} == {
        "quayside": 2.0,
        "market": 3.0,
        "station": 2.0,
        "hill": 1.0,
        "islands": 0.5,
    }


def test_point_in_polygon_respects_holes() -> None:
    """A point in the market's park (its hole) is not in the market; one beside it is."""
    market = load_geojson(SAMPLE).district("market")
    proj = Projection(52.52, 13.40)
    assert not market.contains(*proj.to_latlng(300, -750))
    assert market.contains(*proj.to_latlng(700, -750))


def test_multipolygon_contains_both_parts_and_not_the_water_between() -> None:
    """Both islands belong to the district; the gap between them does not."""
    islands = load_geojson(SAMPLE).district("islands")
    proj = Projection(52.52, 13.40)
    assert islands.contains(*proj.to_latlng(-1600, -2100))
    assert islands.contains(*proj.to_latlng(-500, -2100))
    assert not islands.contains(*proj.to_latlng(-1000, -2100))


def test_geojson_samples_stay_in_their_district() -> None:
    """Points sampled from a district with a hole are inside it, never in the hole."""
    market = load_geojson(SAMPLE).district("market")
    rng = random.Random(3)
    for _ in range(500):
        lat, lng = market.sample(rng)
        assert all(in_polygon(lat, lng, p) for p in market.polygons)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "FeatureCollection"),
        ({"type": "FeatureCollection", "features": [{"properties": {}}]}, "properties.name"),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "properties": {"name": "a"},
                        "geometry": {"type": "Point", "coordinates": [1, 2]},
                    }
                ],
            },
            "not Polygon or MultiPolygon",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "properties": {"name": "a", "weight": -1},
                        "geometry": {"type": "Polygon", "coordinates": []},
                    }
                ],
            },
            "weight",
        ),
    ],
)
def test_bad_geojson_is_refused_with_the_reason(tmp_path: Path, doc: object, message: str) -> None:
    """A malformed district file fails with a message naming the problem."""
    path = tmp_path / "bad.geojson"
    path.write_bytes(msgspec.json.encode(doc))
    with pytest.raises(CityError, match=message):
        load_geojson(path)


# ---------------------------------------------------------------- movement


def _grid() -> Grid:
    city = default_city()
    return Grid(city.bbox, city.projection, 100.0)


def test_mover_reaches_the_target_at_the_expected_speed() -> None:
    """A 1.2 km Manhattan trip at 5 m/s takes 240 s, and not a step less."""
    grid = _grid()
    mover = Mover(grid, (0, 0), now=0.0, rng=random.Random(4))
    eta = mover.head_to((5, -7), speed=5.0, now=0.0)
    assert eta == pytest.approx(240.0)
    t = 0.0
    while t + 0.5 < eta:
        t += 0.5
        mover.advance_to(t)
        assert not mover.arrived
        x, y = mover.xy
        travelled = abs(x) + abs(y)
        assert travelled == pytest.approx(5.0 * t)
    mover.advance_to(eta)
    assert mover.arrived and mover.node == (5, -7)


def test_mover_stays_on_the_street_grid() -> None:
    """At every moment one coordinate is on a grid line."""
    mover = Mover(_grid(), (0, 0), now=0.0, rng=random.Random(5))
    mover.head_to((12, 9), speed=7.0, now=0.0)
    for step in range(1, 400):
        mover.advance_to(step * 0.37)
        x, y = mover.xy
        assert min(abs(x / 100 - round(x / 100)), abs(y / 100 - round(y / 100))) < 1e-6


def test_mover_finishes_its_block_before_turning() -> None:
    """Re-routing mid-block counts the rest of the block in the arrival time."""
    mover = Mover(_grid(), (0, 0), now=0.0, rng=random.Random(6))
    mover.head_to((3, 0), speed=10.0, now=0.0)
    mover.advance_to(4.0)  # 40 m along the first block east
    eta = mover.head_to((0, 0), speed=10.0, now=4.0)
    assert eta == pytest.approx((60 + 100) / 10.0)


def test_grid_node_is_clamped_to_the_city() -> None:
    """A point far outside the city maps to the grid's edge."""
    grid = _grid()
    assert grid.node(60.0, 30.0) == (grid.i_range[1], grid.j_range[1])


def test_dropoff_is_about_the_asked_distance_away() -> None:
    """A drop-off drawn for exactly 2 km is 20 blocks away (Manhattan) inside the city."""
    grid, rng = _grid(), random.Random(7)
    for _ in range(100):
        i, j = dropoff_node(grid, (0, 0), (2.0, 2.0), rng)
        assert abs(i) + abs(j) == 20


# ---------------------------------------------------------------- arrivals and fleet


def test_poisson_arrivals_have_the_mean_rate() -> None:
    """Over 10,000 s at 2/s about 20,000 orders arrive, with exponential gaps."""
    times = list(arrivals(2.0, 10_000.0, random.Random(8)))
    assert len(times) == pytest.approx(20_000, abs=5 * math.sqrt(20_000))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.5, rel=0.03)
    assert percentile(gaps, 50) == pytest.approx(math.log(2) / 2.0, rel=0.05)


def test_poisson_arrivals_replay_with_the_same_seed() -> None:
    """The same seed gives the same arrival times; another seed does not."""
    assert list(arrivals(1.0, 100, random.Random(9))) == list(arrivals(1.0, 100, random.Random(9)))
    assert list(arrivals(1.0, 100, random.Random(9))) != list(arrivals(1.0, 100, random.Random(10)))
    assert list(arrivals(0.0, 100, random.Random(9))) == []


def test_fleet_is_reproducible_and_each_worker_can_do_something() -> None:
    """Same seed, same fleet; every worker has a skill and a plausible speed."""
    config = load_scenario("demo")
    city = load_city(config)
    grid = Grid(city.bbox, city.projection, config.block_m)
    first = build_fleet(config, 0, 200, "demo", city, grid)
    again = build_fleet(config, 0, 200, "demo", city, grid)
    assert [p.skills for p in first] == [p.skills for p in again]
    assert [p.start for p in first] == [p.start for p in again]
    for p in first:
        assert p.skills
        kmh = config.workers.vehicles[p.vehicle].speed_kmh
        assert kmh[0] <= p.speed_mps / KMH / config.speed_factor <= kmh[1]


def test_processes_split_the_fleet_and_rate_and_get_their_own_city() -> None:
    """Three processes share 10 workers and 3 orders/s, each in its own city."""
    config = with_overrides(SimConfig(), {"procs": 3, "workers.count": 10, "orders.rate_per_s": 3})
    parts = [slice_of(config, p) for p in range(3)]
    assert [name for name, _, _ in parts] == ["metro-0", "metro-1", "metro-2"]
    assert sum(n for _, n, _ in parts) == 10
    assert sum(r for _, _, r in parts) == pytest.approx(3.0)


def test_tokens_carry_the_claims_the_server_checks() -> None:
    """Worker tokens name city, skills and capacity; customer tokens their role."""
    key = "k" * 32
    claims = jwt.decode(
        worker_token(key, "w1", "metro", ["delivery"], 60), key, algorithms=["HS256"]
    )
    assert claims["role"] == "worker" and claims["city"] == "metro"
    assert claims["skills"] == ["delivery"] and claims["capacity"] == 1
    assert claims["exp"] - claims["iat"] == 60
    claims = jwt.decode(customer_token(key, "c1", 60), key, algorithms=["HS256"])
    assert claims["sub"] == "c1" and claims["role"] == "customer"
