"""Scenario files and the command line: loading, validation errors naming the key,
overrides, help texts and exit statuses. No server needed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from simulator.cli import add_arguments, config_from_args, run
from simulator.runner import load_city
from simulator.scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
    scenario_names,
    with_overrides,
)

SAMPLE = Path(__file__).parent.parent.parent / "simulator" / "data" / "harbourtown.geojson"


# ---------------------------------------------------------------- scenarios


@pytest.mark.parametrize("name", scenario_names())
def test_builtin_scenarios_load(name: str) -> None:
    """Every shipped scenario is valid, and its city and outages check out."""
    config = load_scenario(name)
    assert config.name == name
    load_city(config)


def test_builtin_scenarios_include_the_four_promised() -> None:
    """The quick-start and load scenarios ship with the package."""
    assert {"demo", "quiet-morning", "lunch-rush", "district-outage"} <= set(scenario_names())


def test_demo_is_small_and_short() -> None:
    """The demo stays small enough to finish in about twenty seconds."""
    demo = load_scenario("demo")
    assert demo.workers.count <= 100
    assert demo.workers.ramp_s + demo.duration_s + demo.grace_s <= 25


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"workers": {"cuont": 3}}, "workers.cuont: unknown key"),
        ({"colour": "red"}, "colour: unknown key"),
        (
            {"workers": {"accept_probability": 1.5}},
            "workers.accept_probability: Expected `float` <= 1.0",
        ),
        ({"orders": {"rate_per_s": -1}}, "orders.rate_per_s"),
        ({"skills": {"delivery": {"service_s": [9, 3]}}}, "skills.delivery: `service_s`: min 9"),
        ({"skills": {"delivery": {"sevice_s": [1, 2]}}}, "skills.delivery.sevice_s: unknown key"),
        ({"skills": {"Bad Name": {}}}, "skills: bad name: Expected `str` matching regex"),
        ({"city": "Metro City"}, "city: Expected `str` matching regex"),
        ({"workers": {"vehicles": {"bike": {"share": 1, "speed_kmh": [0, 10]}}}}, "vehicles.bike"),
        ({"skills": {}}, "`skills`: give at least one skill"),
        ({"outages": [{"at_s": 5}]}, "outages[0]: Object missing required field `district`"),
    ],
)
def test_bad_scenarios_name_the_key(data: dict[str, object], message: str) -> None:
    """A bad scenario fails with the dotted key and what is wrong with it."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "test.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("test.toml: ")


def test_scenario_file_errors_name_the_file(tmp_path: Path) -> None:
    """Invalid TOML and unknown scenario names are reported clearly."""
    path = tmp_path / "broken.toml"
    path.write_text("seed = = 3\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(str(path))
    with pytest.raises(ScenarioError, match="built-in: chaos, demo"):
        load_scenario("no-such-scenario")


def test_scenario_districts_path_is_relative_to_the_file(tmp_path: Path) -> None:
    """``districts`` is resolved against the scenario's folder."""
    (tmp_path / "city.geojson").write_bytes(SAMPLE.read_bytes())
    path = tmp_path / "mine.toml"
    path.write_text('districts = "city.geojson"\n[orders]\nrate_per_s = 3\n')
    config = load_scenario(str(path))
    assert config.districts == str(tmp_path / "city.geojson")
    assert config.orders.rate_per_s == 3.0
    assert len(load_city(config).districts) == 5


def test_outage_in_an_unknown_district_is_a_scenario_error() -> None:
    """An outage must name a district of the city."""
    config = parse_scenario({"outages": [{"at_s": 1, "district": "atlantis"}]})
    with pytest.raises(ScenarioError, match="atlantis"):
        load_city(config)


def test_overrides_apply_and_are_validated() -> None:
    """Dotted overrides replace values; None changes nothing; bad values name the key."""
    config = with_overrides(load_scenario("demo"), {"workers.count": 7, "seed": None})
    assert config.workers.count == 7 and config.seed == load_scenario("demo").seed
    with pytest.raises(ScenarioError, match=r"workers\.count"):
        with_overrides(config, {"workers.count": -1})


def test_cli_overrides_and_help() -> None:
    """Every option has help text, and command-line values override the scenario."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for action in parser._actions:
        assert action.help, action.dest
    args = parser.parse_args(["--workers", "12", "--rate", "0.5", "--url", "http://h:1/"])
    config = config_from_args(args)
    assert (config.workers.count, config.orders.rate_per_s, config.url) == (12, 0.5, "http://h:1")


def test_cli_bad_scenario_exits_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad scenario is a usage error, reported on stderr."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--scenario", "nope", "--quiet"])) == 2
    assert "no scenario 'nope'" in capsys.readouterr().err
