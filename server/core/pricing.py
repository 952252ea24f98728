"""Quoting an order's price from its category's pricing. Pure.

The quote is computed once, when the order is created, returned to the
customer, pinned on the order and shown in the offer: a later change of the
category's prices changes new orders only.

How a quote is built, in minor units (cents)::

    base
    + per_km     x km from pickup to dropoff (straight line; 0 without a dropoff)
    + per_minute x minutes (the ``minutes_from`` attribute, else the trip at speed_kmh)
    + each surcharge that applies: amount (x the attribute named by ``per``)
    then x each applying surcharge's multiplier, then at least ``minimum``;
    rounded half up to a whole minor unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from protocol.catalogue import Attribute, AttributeType, CategoryDefinition, Quote, QuoteLine
from protocol.messages import Point

from server.core.attributes import Value, holds, number

EARTH_RADIUS_KM = 6371.0088


def distance_km(a: Point, b: Point) -> float:
    """The great-circle distance between two points (haversine)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlng = lat2 - lat1, math.radians(b.lng - a.lng)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def round_half_up(amount: float) -> int:
    """An amount rounded half up to a whole minor unit."""
    return math.floor(amount + 0.5)


def _minutes(attr: Attribute, value: Value) -> float:
    seconds = number(attr, value)
    return seconds / 60 if attr.type is AttributeType.DURATION else seconds


def quote(
    category: CategoryDefinition,
    values: Mapping[str, Value],
    pickup: Point,
    dropoff: Point | None,
) -> Quote:
    """The price of an order with these (checked) attributes and places."""
    p = category.pricing
    form = {a.name: a for a in category.attributes}
    km = distance_km(pickup, dropoff) if dropoff else 0.0
    if p.minutes_from is not None and p.minutes_from in values:
        minutes = _minutes(form[p.minutes_from], values[p.minutes_from])
    else:
        minutes = km / p.speed_kmh * 60
    parts: list[tuple[str, float]] = [("base", p.base)]
    if p.per_km and km:
        parts.append((f"{km:.1f} km", p.per_km * km))
    if p.per_minute and minutes:
        parts.append((f"{minutes:.0f} min", p.per_minute * minutes))
    multipliers: list[tuple[str, float]] = []
    for extra in p.surcharges:
        if extra.when is not None and not holds(extra.when, form, values):
            continue
        if extra.amount:
            if extra.per is None:
                parts.append((extra.label, extra.amount))
            elif extra.per in values:
                parts.append(
                    (extra.label, extra.amount * number(form[extra.per], values[extra.per]))
                )
        if extra.multiplier is not None:
            multipliers.append((extra.label, extra.multiplier))
    lines = [
        QuoteLine(label, round_half_up(amount)) for label, amount in parts if round_half_up(amount)
    ]
    total = float(sum(line.amount for line in lines))
    for label, factor in multipliers:
        added = round_half_up(total * factor) - round_half_up(total)
        total = total * factor
        lines.append(QuoteLine(f"{label} (x{factor:g})", added))
    final = round_half_up(total)
    if final < p.minimum:
        lines.append(QuoteLine("minimum", p.minimum - final))
        final = p.minimum
    return Quote(currency=p.currency, total=final, lines=lines)
