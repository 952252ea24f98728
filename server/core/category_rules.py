"""The category catalogue's rules: what makes a definition acceptable, and
how two versions differ. Pure.

A definition is checked completely before it is stored: each field's type
and range by its Struct (``protocol/catalogue.py``), then here everything
that needs the whole definition. :func:`check` returns every problem at
once, each naming its path (``attributes[1].max``, ``steps[3].next``,
``pricing.surcharges[0].when.attribute``), so an author fixes a file in one
pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import msgspec
from protocol.catalogue import (
    Attribute,
    AttributeType,
    CategoryDefinition,
    Condition,
    FieldError,
)

from server.core import workflow
from server.core.attributes import NUMERIC, ORDERED, Bad, check_value

__all__ = ["check", "diff"]

T = AttributeType


def _attribute(attr: Attribute, where: str) -> Iterator[FieldError]:
    if attr.type is T.ENUM and not attr.values:
        yield FieldError(f"{where}.values", "missing_field", "an enum needs its values")
    if attr.type is not T.ENUM and attr.values is not None:
        yield FieldError(f"{where}.values", "invalid_field", "only an enum has values")
    if attr.type not in NUMERIC and (attr.min is not None or attr.max is not None):
        yield FieldError(f"{where}.min", "invalid_field", "only numbers and durations have bounds")
    if attr.min is not None and attr.max is not None and attr.min > attr.max:
        yield FieldError(f"{where}.max", "invalid_field", "max is below min")
    if attr.type is not T.STRING and attr.max_length is not None:
        yield FieldError(f"{where}.max_length", "invalid_field", "only a string has a max_length")
    if attr.default is not None:
        try:
            check_value(attr, attr.default)
        except Bad as bad:
            yield FieldError(f"{where}.default", bad.code, bad.message)


def _condition(cond: Condition, form: Mapping[str, Attribute], where: str) -> Iterator[FieldError]:
    attr = form.get(cond.attribute)
    if attr is None:
        yield FieldError(
            f"{where}.attribute", "unknown_attribute", f"no attribute {cond.attribute!r}"
        )
        return
    if cond.op in ("gt", "ge", "lt", "le") and attr.type not in ORDERED:
        yield FieldError(
            f"{where}.op", "invalid_field", f"{cond.op!r} needs a number, duration or date-time"
        )
        return
    if cond.op == "set":
        if cond.value is not None:
            yield FieldError(f"{where}.value", "invalid_field", "'set' takes no value")
        return
    if attr.type is T.POINT:
        yield FieldError(
            f"{where}.attribute", "invalid_field", "a point can only be tested with 'set'"
        )
        return
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    if (cond.op == "in") != isinstance(cond.value, list):
        yield FieldError(f"{where}.value", "invalid_field", "'in' and only 'in' takes a list")
        return
    for value in values:
        try:
            check_value(Attribute(name=attr.name, type=attr.type, values=attr.values), value)
        except Bad as bad:
            yield FieldError(f"{where}.value", bad.code, bad.message)
            return  # fmt: skip


def _numeric(name: str | None, form: Mapping[str, Attribute], where: str) -> Iterator[FieldError]:
    if name is None:
        return
    attr = form.get(name)
    if attr is None:
        yield FieldError(where, "unknown_attribute", f"no attribute {name!r}")
    elif attr.type not in NUMERIC:
        yield FieldError(where, "invalid_field", f"{name!r} is not a number or a duration")


def _problems(d: CategoryDefinition) -> Iterator[FieldError]:
    form = {a.name: a for a in d.attributes}
    seen: set[str] = set()
    for i, attr in enumerate(d.attributes):
        if attr.name in seen:
            where = f"attributes[{i}].name"
            yield FieldError(where, "duplicate", f"a second attribute {attr.name!r}")
        seen.add(attr.name)
    for i, attr in enumerate(d.attributes):
        yield from _attribute(attr, f"attributes[{i}]")
    radii = d.dispatch.radius_steps_km
    if radii is not None and list(radii) != sorted(set(radii)):
        yield FieldError(
            "dispatch.radius_steps_km", "invalid_field", "radii must grow step by step"
        )
    yield from _numeric(d.pricing.minutes_from, form, "pricing.minutes_from")
    for i, extra in enumerate(d.pricing.surcharges):
        where = f"pricing.surcharges[{i}]"
        if extra.when is not None:
            yield from _condition(extra.when, form, f"{where}.when")
        yield from _numeric(extra.per, form, f"{where}.per")
        if not extra.amount and extra.multiplier is None:
            yield FieldError(where, "invalid_field", "a surcharge needs an amount or a multiplier")
    for i, step in enumerate(d.steps):
        if step.when is not None:
            yield from _condition(step.when, form, f"steps[{i}].when")
    yield from workflow.check_graph(d.steps)
    names = {s.name for s in d.steps}
    for field in ("free_until", "customer_until", "worker_until"):
        target = getattr(d.cancellation, field)
        if target is not None and target not in names:
            yield FieldError(f"cancellation.{field}", "unknown_step", f"no step {target!r}")


def check(definition: CategoryDefinition) -> list[FieldError]:
    """Every problem with a definition (empty when it may be stored)."""
    return list(_problems(definition))


def _flat(value: object, path: str) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key in value:
            yield from _flat(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            yield from _flat(item, f"{path}[{i}]")
    else:
        yield path, value


def diff(
    old: CategoryDefinition | None, new: CategoryDefinition
) -> list[tuple[str, object, object]]:
    """What changes from ``old`` to ``new``: (path, old value, new value) for
    each leaf that differs, ``None`` standing for absent."""
    before = dict(_flat(msgspec.to_builtins(old), "")) if old is not None else {}
    after = dict(_flat(msgspec.to_builtins(new), ""))
    paths = sorted(set(before) | set(after))
    return [(p, before.get(p), after.get(p)) for p in paths if before.get(p) != after.get(p)]
