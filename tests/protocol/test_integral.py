"""Integers spelt as integral floats (``420.0``) decode as JSON Schema says they
are; the slow path that takes them decodes every sample as the fast one does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from protocol import codec
from tests.protocol.test_wire_format import SAMPLES, _decoder


def _floats(value: Any) -> Any:
    """``value`` with every integer made a float (``True`` and ``False`` kept)."""
    if isinstance(value, bool) or not isinstance(value, int | dict | list):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return [_floats(v) for v in value]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_the_slow_path_decodes_a_sample_as_the_fast_one(path: Path) -> None:
    """Decoding through integral_decode gives what the decoder itself gives."""
    decoder = _decoder(path)
    assert codec.integral_decode(decoder, path.read_bytes()) == decoder.decode(path.read_bytes())


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_a_sample_with_floats_for_its_integers_decodes_the_same(path: Path) -> None:
    """Every integer of a sample spelt `n.0` still decodes to the same message."""
    decoder = _decoder(path)
    raw = json.dumps(_floats(json.loads(path.read_bytes()))).encode()
    assert codec.decode(decoder, raw) == decoder.decode(path.read_bytes())


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b'{"amount": 420.5}', "invalid_field", "amount"),
        (b'{"amount": "420"}', "invalid_field", "amount"),
        (b'{"amount": 1e300}', "out_of_range", "amount"),
        (b'{"amount": 4.0, "x": 1}', "invalid_field", "x"),
    ],
)
def test_what_is_not_an_integer_is_refused(raw: bytes, code: str, field: str) -> None:
    """A fraction, a string or an integer too big is refused with its code and path."""
    with pytest.raises(msgspec.ValidationError) as caught:
        codec.decode(codec.tip_order_decoder, raw)
    assert (codec.error_code(caught.value), codec.error_field(caught.value)) == (code, field)
