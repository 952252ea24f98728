"""The catalogue's pure rules: attribute values, conditions, quotes, and
definitions checked completely with each problem's path."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from protocol.catalogue import (
    Attribute,
    AttributeType,
    Cancellation,
    CategoryDefinition,
    Condition,
    FieldError,
    Pricing,
    Step,
    Surcharge,
)
from protocol.messages import Point
from server import categories
from server.core import attributes, category_rules, pricing, workflow
from server.core.diagram import workflow_mermaid
from server.core.order_states import OrderState

T = AttributeType
GROOMING = Path(__file__).parent.parent / "data" / "pet-grooming.toml"


def definition(**changes: object) -> CategoryDefinition:
    """A small valid definition, with some fields replaced."""
    base = CategoryDefinition(
        key="tiny", name="Tiny", skills=["odd-jobs"],
        attributes=[Attribute(name="kg", type=T.NUMBER, min=0, max=10)],
        steps=[Step(name="arrived", state="arrived"), Step(name="done")],
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


# ---------------------------------------------------------------- attribute values


@pytest.mark.parametrize(
    ("attr", "value", "normal"),
    [
        (Attribute(name="a", type=T.STRING), "hi", "hi"),
        (Attribute(name="a", type=T.INTEGER, min=1, max=3), 3, 3),
        (Attribute(name="a", type=T.NUMBER), 2, 2),
        (Attribute(name="a", type=T.BOOLEAN), False, False),
        (Attribute(name="a", type=T.ENUM, values=["x", "y"]), "y", "y"),
        (Attribute(name="a", type=T.DATE_TIME), "2026-12-02T14:00:00Z", "2026-12-02T14:00:00Z"),
        (Attribute(name="a", type=T.DURATION), "PT1H30M", 5400),
        (Attribute(name="a", type=T.DURATION), "P1DT1S", 86401),
        (Attribute(name="a", type=T.DURATION), 90, 90),
        (Attribute(name="a", type=T.POINT), {"lat": 52.5, "lng": 13}, {"lat": 52.5, "lng": 13.0}),
    ],
)
def test_a_fitting_value_is_normalised(attr: Attribute, value: object, normal: object) -> None:
    """Each type takes its values and stores them in one shape."""
    assert attributes.check_value(attr, value) == normal


@pytest.mark.parametrize(
    ("attr", "value", "code"),
    [
        (Attribute(name="a", type=T.STRING, max_length=3), "long", "too_long"),
        (Attribute(name="a", type=T.STRING), 5, "invalid_field"),
        (Attribute(name="a", type=T.INTEGER), 1.5, "invalid_field"),
        (Attribute(name="a", type=T.INTEGER), True, "invalid_field"),
        (Attribute(name="a", type=T.INTEGER, max=3), 4, "out_of_range"),
        (Attribute(name="a", type=T.NUMBER, min=0.5), 0.4, "out_of_range"),
        (Attribute(name="a", type=T.BOOLEAN), "yes", "invalid_field"),
        (Attribute(name="a", type=T.ENUM, values=["x"]), "z", "invalid_field"),
        (Attribute(name="a", type=T.DATE_TIME), "2026-12-02T14:00:00", "invalid_field"),
        (Attribute(name="a", type=T.DATE_TIME), "tomorrow", "invalid_field"),
        (Attribute(name="a", type=T.DURATION), "PT", "invalid_field"),
        (Attribute(name="a", type=T.DURATION), -1, "invalid_field"),
        (Attribute(name="a", type=T.DURATION, max=60), "PT2M", "out_of_range"),
        (Attribute(name="a", type=T.POINT), {"lat": 91, "lng": 0}, "out_of_range"),
        (Attribute(name="a", type=T.POINT), {"lat": 1}, "invalid_field"),
    ],
)
def test_a_bad_value_is_refused_with_its_code(attr: Attribute, value: object, code: str) -> None:
    """A value of the wrong type or out of bounds names why."""
    with pytest.raises(attributes.Bad) as bad:
        attributes.check_value(attr, value)
    assert bad.value.code == code


def test_every_bad_field_is_named_once() -> None:
    """Missing, unknown and bad fields each get their own error; defaults fill in."""
    form = [
        Attribute(name="breed", type=T.ENUM, values=["poodle"], required=True),
        Attribute(name="kg", type=T.NUMBER, max=80, required=True),
        Attribute(name="coat", type=T.ENUM, values=["short", "long"], default="short"),
    ]
    values, errors = attributes.check_values(form, {"kg": 81, "colour": "red"})
    assert values == {"coat": "short"}
    assert [(e.field, e.code) for e in errors] == [
        ("attributes.colour", "unknown_attribute"),
        ("attributes.breed", "missing_field"),
        ("attributes.kg", "out_of_range"),
    ]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (Condition(attribute="kg", op="gt", value=40), True),
        (Condition(attribute="kg", op="le", value=40), False),
        (Condition(attribute="coat", op="in", value=["long", "short"]), True),
        (Condition(attribute="coat", op="ne", value="long"), True),
        (Condition(attribute="hours", op="ge", value="PT1H"), True),
        (Condition(attribute="at", op="lt", value="2026-12-02T15:00:00+02:00"), False),
        (Condition(attribute="note", op="set"), False),
        (Condition(attribute="note", op="eq", value="x"), False),
    ],
)
def test_conditions_compare_normalised_values(cond: Condition, expected: bool) -> None:
    """Numbers, durations and times compare by value; a missing attribute is never equal."""
    form = {
        "kg": Attribute(name="kg", type=T.NUMBER),
        "coat": Attribute(name="coat", type=T.ENUM, values=["short", "long"]),
        "hours": Attribute(name="hours", type=T.DURATION),
        "at": Attribute(name="at", type=T.DATE_TIME),
        "note": Attribute(name="note", type=T.STRING),
    }
    values: dict[str, attributes.Value] = {
        "kg": 41.0,
        "coat": "short",
        "hours": 3600,
        "at": "2026-12-02T13:00:00Z",
    }
    assert attributes.holds(cond, form, values) is expected


# ---------------------------------------------------------------- quotes

BERLIN = Point(lat=52.52, lng=13.405)
POTSDAM = Point(lat=52.3906, lng=13.0645)


def test_distance_is_the_great_circle() -> None:
    """Berlin to Potsdam centre is 27.2 km as the crow flies."""
    assert pricing.distance_km(BERLIN, POTSDAM) == pytest.approx(27.19, abs=0.01)


def test_a_quote_adds_base_distance_time_and_surcharges() -> None:
    """Lines add up to the total; a per-unit surcharge counts the attribute."""
    d = definition(
        pricing=Pricing(base=1000, per_km=100, per_minute=10, speed_kmh=30, surcharges=[
            Surcharge(label="per kg", per="kg", amount=50),
            Surcharge(label="heavy", when=Condition(attribute="kg", op="gt", value=5), amount=200),
        ]),
    )  # fmt: skip
    q = pricing.quote(d, {"kg": 6}, BERLIN, POTSDAM)
    km = pricing.distance_km(BERLIN, POTSDAM)
    expected = 1000 + round(100 * km) + round(10 * km / 30 * 60) + 300 + 200
    assert q.total == expected == sum(line.amount for line in q.lines)
    assert [line.label for line in q.lines][-2:] == ["per kg", "heavy"]


def test_multipliers_apply_to_the_sum_and_the_minimum_wins() -> None:
    """A multiplier's line is what it added; a small order pays the minimum."""
    d = definition(pricing=Pricing(base=1000, minimum=0, surcharges=[
        Surcharge(label="rush", multiplier=1.25)]))  # fmt: skip
    q = pricing.quote(d, {}, BERLIN, None)
    assert (q.total, q.lines[-1].amount) == (1250, 250)
    small = definition(pricing=Pricing(base=100, minimum=700))
    q = pricing.quote(small, {}, BERLIN, None)
    assert q.total == 700 == sum(line.amount for line in q.lines)


def test_grooming_is_base_plus_per_kg() -> None:
    """The README's example: 25 EUR and 50 cents a kilo."""
    d = categories.load(GROOMING)
    q = pricing.quote(d, {"breed": "poodle", "weight_kg": 42.0, "coat": "long"}, BERLIN, None)
    assert (q.currency, q.total) == ("EUR", 2500 + 2100)


# ---------------------------------------------------------------- definitions


def test_the_builtin_categories_are_valid() -> None:
    """Every shipped example passes the whole check."""
    keys = [d.key for d in categories.builtins()]
    assert keys == ["beauty", "express-delivery", "housekeeping", "ride"]


def test_a_valid_definition_has_no_problems() -> None:
    """The baseline of the checks below is clean."""
    assert category_rules.check(definition()) == []
    assert category_rules.check(categories.load(GROOMING)) == []


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"steps": [Step(name="a", next="nowhere"), Step(name="b")]}, "steps[0].next"),
        ({"steps": [Step(name="a", next="c"), Step(name="b"), Step(name="c")]}, "steps[1]"),
        ({"steps": [Step(name="a"), Step(name="b", next="a")]}, "steps[1]"),
        ({"steps": [Step(name="a"), Step(name="a")]}, "steps[1].name"),
        ({"steps": [Step(name="offered")]}, "steps[0].name"),
        (
            {
                "steps": [
                    Step(name="a", state="started"),
                    Step(name="b", state="arrived"),
                    Step(name="c"),
                ]
            },
            "steps[1].state",
        ),
        (
            {"steps": [Step(name="ok", kind="approval", by="worker", timeout_s=5), Step(name="b")]},
            "steps[0].by",
        ),
        (
            {"steps": [Step(name="ok", kind="approval", by="customer"), Step(name="b")]},
            "steps[0].timeout_s",
        ),
        (
            {"steps": [Step(name="a"), Step(name="b", when=Condition(attribute="kg", op="set"))]},
            "steps[1].when",
        ),
        (
            {"steps": [Step(name="a", when=Condition(attribute="size")), Step(name="b")]},
            "steps[0].when.attribute",
        ),
        ({"attributes": [Attribute(name="e", type=T.ENUM)]}, "attributes[0].values"),
        ({"attributes": [Attribute(name="n", type=T.NUMBER, min=5, max=1)]}, "attributes[0].max"),
        (
            {"attributes": [Attribute(name="n", type=T.INTEGER, default="x")]},
            "attributes[0].default",
        ),
        (
            {"pricing": Pricing(surcharges=[Surcharge(label="x", amount=1, per="missing")])},
            "pricing.surcharges[0].per",
        ),
        (
            {
                "pricing": Pricing(
                    surcharges=[
                        Surcharge(
                            label="x",
                            amount=1,
                            when=Condition(attribute="kg", op="gt", value="heavy"),
                        )
                    ]
                )
            },
            "pricing.surcharges[0].when.value",
        ),
        ({"pricing": Pricing(minutes_from="kgs")}, "pricing.minutes_from"),
    ],
)
def test_a_bad_definition_names_the_offending_path(changes: dict[str, object], where: str) -> None:
    """Each rule refuses with the path of what broke it."""
    assert where in fields(category_rules.check(definition(**changes)))


def test_a_bad_file_lists_every_problem() -> None:
    """Loading reports all problems at once, and type errors with their path."""
    bad = b'key = "x"\nname = "X"\nskills = ["a"]\n[[steps]]\nname = "a"\nnext = "zz"\n' \
          b'[cancellation]\nfree_until = "b"\n'  # fmt: skip
    with pytest.raises(categories.BadDefinition) as caught:
        categories.parse(bad, "bad.toml", toml=True)
    assert fields(caught.value.errors) == ["steps[0].next", "cancellation.free_until"]
    with pytest.raises(categories.BadDefinition) as caught:
        categories.parse(b'{"key": "x", "name": "X", "skills": ["a"], "steps": [{"name": 5}]}', "j")
    assert fields(caught.value.errors) == ["steps[0].name"]


def test_approval_branches_are_part_of_the_graph() -> None:
    """A rejection may lead to another step, which then counts as reachable."""
    steps = [
        Step(name="check", kind="approval", by="operator", timeout_s=60, on_reject="redo"),
        Step(name="done", terminal=True),
        Step(name="redo", next="done"),
    ]
    assert workflow.check_graph(steps) == []
    assert workflow.successors(steps, 0) == [1, 2]


def test_diff_names_changed_leaves() -> None:
    """A price change is one path with its old and new value."""
    old = definition()
    new = definition(pricing=Pricing(base=900))
    assert category_rules.diff(old, new) == [("pricing.base", 0, 900)]
    assert category_rules.diff(old, old) == []
    assert ("key", None, "tiny") in category_rules.diff(None, old)


def test_a_workflow_diagram_draws_approvals_skips_and_ends() -> None:
    """An approval's approve and reject arrows, a conditional step's skip, the end."""
    steps = [
        Step(name="arrived", state="arrived"),
        Step(name="check", by="operator", kind="approval", on_reject="redo",
             when=Condition(attribute="big", op="set")),
        Step(name="done", terminal=True),
        Step(name="redo", next="done"),
    ]  # fmt: skip
    lines = workflow_mermaid(steps).splitlines()
    assert lines[:2] == ["stateDiagram-v2", "    [*] --> arrived: assigned"]
    assert "    check: operator approval; when big is set" in lines
    assert "    check --> done: approve" in lines and "    check --> redo: reject" in lines
    assert "    arrived --> done: skip check" in lines
    assert "    done --> [*]: order completed" in lines
    assert not any("cancelled" in line for line in lines)


@pytest.mark.parametrize(
    ("worker_until", "state", "done", "allowed"),
    [
        (None, "assigned", [], True),
        (None, "arrived", ["arrived"], True),
        (None, "started", ["arrived", "started"], False),  # the default point of no return
        ("arrived", "assigned", [], True),
        ("arrived", "arrived", ["arrived"], False),
        ("photo_sent", "started", ["arrived", "groomed"], True),  # a later point allows more
        (None, "offered", [], False),  # no job yet
        (None, "completed", ["arrived", "started", "completed"], False),
    ],
)
def test_a_worker_may_hand_a_job_back_until_its_point_of_no_return(
    worker_until: str | None, state: str, done: list[str], allowed: bool
) -> None:
    """The category's worker_until step, or by default the start of the work."""
    rules = Cancellation(worker_until=worker_until)
    assert workflow.worker_may_hand_back(rules, done, OrderState(state)) is allowed
