"""Order attributes: checking the values a customer sends against a category's
order form, and the conditions that steps and prices test on them.

Pure: no I/O, clock or randomness. A value is checked once, where the order
enters (``POST /v1/orders``), and stored normalised (a duration as whole
seconds, a point as ``{"lat", "lng"}``), so everything after reads one shape.
Every bad field gets its own :class:`FieldError` (``attributes.<name>``, a
stable code, a message), so a form can mark each one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final, TypeGuard

from protocol.catalogue import Attribute, AttributeType, AttributeValue, Condition, FieldError

__all__ = [
    "NUMERIC",
    "ORDERED",
    "Value",
    "check_value",
    "check_values",
    "holds",
    "number",
]

T = AttributeType
# A normalised value: what :func:`check_value` returns and conditions compare.
Value = str | int | float | bool | dict[str, float]
NUMERIC: Final = frozenset({T.INTEGER, T.NUMBER, T.DURATION})
ORDERED: Final = NUMERIC | {T.DATE_TIME}
STRING_MAX: Final = 500
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?\Z"
)


class Bad(Exception):
    """One value refused: its code and message (the caller names the field)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _duration(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value not in ("P", "PT") and not value.endswith("T"):
        found = _DURATION.match(value)
        if found:
            d, h, m, s = (int(found.group(g) or 0) for g in "dhms")
            return ((d * 24 + h) * 60 + m) * 60 + s
    raise Bad("invalid_field", "expected whole seconds or an ISO 8601 duration such as PT1H30M")


def _instant(value: object) -> datetime:
    if isinstance(value, str):
        try:
            found = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if found.tzinfo is not None:
                return found
    raise Bad(
        "invalid_field", "expected an RFC 3339 date-time with an offset, e.g. 2026-12-02T14:00:00Z"
    )


def _text(attr: Attribute, value: object) -> str:
    if not isinstance(value, str):
        raise Bad("invalid_field", "expected a string")
    if attr.type is T.ENUM and value not in (attr.values or ()):
        raise Bad("invalid_field", f"expected one of {', '.join(attr.values or ())}")
    if len(value) > (attr.max_length or STRING_MAX):
        raise Bad("too_long", f"longer than {attr.max_length or STRING_MAX} characters")
    return value


def _flag(attr: Attribute, value: object) -> bool:
    if not isinstance(value, bool):
        raise Bad("invalid_field", "expected true or false")
    return value


def _whole(attr: Attribute, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Bad("invalid_field", "expected a whole number")
    return value


def _real(attr: Attribute, value: object) -> int | float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise Bad("invalid_field", "expected a number")
    return value


def _stamp(attr: Attribute, value: object) -> str:
    _instant(value)
    assert isinstance(value, str)
    return value


def _point(attr: Attribute, value: object) -> dict[str, float]:
    if isinstance(value, Mapping) and set(value) == {"lat", "lng"}:
        lat, lng = value["lat"], value["lng"]
        if _is_number(lat) and _is_number(lng):
            if abs(lat) <= 85.05112878 and abs(lng) <= 180:
                return {"lat": float(lat), "lng": float(lng)}
            raise Bad("out_of_range", "lat must be within ±85.05112878 and lng within ±180")
    raise Bad("invalid_field", 'expected a point {"lat": ..., "lng": ...}')


_SHAPES: Final[dict[AttributeType, Callable[[Attribute, object], Value]]] = {
    T.STRING: _text,
    T.ENUM: _text,
    T.BOOLEAN: _flag,
    T.INTEGER: _whole,
    T.NUMBER: _real,
    T.DURATION: lambda _, value: _duration(value),
    T.DATE_TIME: _stamp,
    T.POINT: _point,
}


def check_value(attr: Attribute, value: object) -> Value:
    """``value`` checked against ``attr`` and normalised; :class:`Bad` if it does not fit."""
    shaped = _SHAPES[attr.type](attr, value)
    if attr.type in NUMERIC:
        assert _is_number(shaped)
        amount = float(shaped)
        if attr.min is not None and amount < attr.min:
            raise Bad("out_of_range", f"must be at least {attr.min:g}")
        if attr.max is not None and amount > attr.max:
            raise Bad("out_of_range", f"must be at most {attr.max:g}")
    return shaped


def check_values(
    form: Sequence[Attribute], given: Mapping[str, AttributeValue]
) -> tuple[dict[str, Value], list[FieldError]]:
    """An order's attributes checked against its category's form: the
    normalised values (defaults filled in) and one error per bad field
    (missing, unknown, or not fitting)."""
    known = {a.name: a for a in form}
    out: dict[str, Value] = {}
    errors = [
        FieldError(f"attributes.{name}", "unknown_attribute", "this category has no such attribute")
        for name in sorted(set(given) - set(known))
    ]
    for attr in form:
        where = f"attributes.{attr.name}"
        if attr.name not in given:
            if attr.default is not None:
                out[attr.name] = check_value(attr, attr.default)
            elif attr.required:
                errors.append(FieldError(where, "missing_field", "required"))
            continue
        try:
            out[attr.name] = check_value(attr, given[attr.name])
        except Bad as bad:
            errors.append(FieldError(where, bad.code, bad.message))
    return out, errors


def number(attr: Attribute, value: Value) -> float:
    """A numeric attribute's value as a float (a duration in seconds)."""
    assert attr.type in NUMERIC and _is_number(value)
    return float(value)


def _key(attr: Attribute, value: object) -> float | str | bool:
    if attr.type is T.DATE_TIME:
        return _instant(value).timestamp()
    if attr.type in NUMERIC:
        return float(_duration(value) if attr.type is T.DURATION else _real(attr, value))
    assert isinstance(value, str | bool)
    return value


def holds(cond: Condition, form: Mapping[str, Attribute], values: Mapping[str, Value]) -> bool:
    """Whether ``cond`` is true for an order's (checked) attribute values.
    A condition on an attribute the order does not have is false (``set``
    asks exactly that)."""
    present = cond.attribute in values
    if cond.op == "set":
        return present
    if not present:
        return False
    attr = form[cond.attribute]
    have = _key(attr, values[cond.attribute])
    if cond.op == "in":
        assert isinstance(cond.value, list)
        return have in [_key(attr, v) for v in cond.value]
    want = _key(attr, cond.value)
    if cond.op == "eq":
        return have == want
    if cond.op == "ne":
        return have != want
    a, b = float(have), float(want)
    return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[cond.op]
