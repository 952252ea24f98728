"""JSON Schema's integers in msgspec's decoding: ``420.0`` where an ``int`` is due.

JSON Schema (and so the OpenAPI and AsyncAPI documents) counts a number with
no fractional part as an integer, whatever its spelling; msgspec's strict
decoding refuses ``420.0`` for an ``int`` ("Expected `int`, got `float`"),
and its lax mode would also take ``"420"`` for one, which the documents do
not allow. :func:`integral` walks a value decoded to builtins alongside its
type and turns exactly the integral floats that stand where an ``int`` is
expected into ints; the caller then converts it strictly, so ``420.5``
still fails there, with its path. Imports nothing from ``server``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec.inspect as mi

_SEQUENCES = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)


@cache
def type_info(t: Any) -> mi.Type:
    """msgspec's description of ``t``, built once per type."""
    return mi.type_info(t)


def integral(value: object, t: mi.Type) -> object:
    """``value`` with each integral float that ``t`` expects an ``int`` for made an int."""
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(value, float):
        return int(value) if value.is_integer() and _wants_int(t) else value
    if isinstance(value, list) and isinstance(t, _SEQUENCES):
        return [integral(item, t.item_type) for item in value]
    if isinstance(value, dict):
        return _mapping(value, _object_type(value, t))
    return value


def _wants_int(t: mi.Type) -> bool:
    members = t.types if isinstance(t, mi.UnionType) else (t,)
    plain = [m.type if isinstance(m, mi.Metadata) else m for m in members]
    return any(isinstance(m, mi.IntType) for m in plain) and not any(
        isinstance(m, mi.FloatType) for m in plain
    )


def _object_type(value: dict[str, object], t: mi.Type) -> mi.Type | None:
    """The struct or dict type a JSON object stands for: a union's member by its tag."""
    if not isinstance(t, mi.UnionType):
        return t
    objects = [m for m in t.types if isinstance(m, mi.StructType | mi.DictType)]
    for m in objects:
        if isinstance(m, mi.StructType) and m.tag_field is not None:
            if value.get(m.tag_field) == m.tag:
                return m
        elif len(objects) == 1:
            return m
    return None


def _mapping(value: dict[str, object], t: mi.Type | None) -> dict[str, object]:
    if isinstance(t, mi.DictType):
        return {k: integral(v, t.value_type) for k, v in value.items()}
    if isinstance(t, mi.StructType):
        fields = {f.encode_name: f.type for f in t.fields}
        return {k: integral(v, fields[k]) if k in fields else v for k, v in value.items()}
    return value
