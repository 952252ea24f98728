"""The wire format: round trips, tags, frozen samples, generated schemas, documented codes.

Plain synchronous tests of ``protocol/`` alone; no server, no Redis.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import catalogue, codec, json_schema, messages, schema, webhooks
from protocol.errors import ERROR_CODES
from protocol.messages import Fix, Latitude, LocationReported, Longitude

PROTOCOL_DIR = Path(schema.__file__).parent
PROTOCOL_MD = PROTOCOL_DIR / "PROTOCOL.md"
SAMPLES = sorted((PROTOCOL_DIR / "samples").glob("*.json"))
WS_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "worker": codec.worker_decoder,
    "server": codec.server_decoder,
    "live": codec.live_decoder,
}
WS_UNIONS: dict[str, Any] = {
    "worker": json_schema.UNIONS["WorkerMessage"],
    "server": json_schema.UNIONS["ServerMessage"],
    "live": json_schema.UNIONS["LiveMessage"],
}
HTTP_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "create_order": codec.create_order_decoder,
    "order_view": codec.order_view_decoder,
    "error": codec.http_error_decoder,
    "do_step": codec.do_step_decoder,
    "category_definition": codec.category_definition_decoder,
    "category": codec.category_decoder,
    "category_list": codec.category_list_decoder,
    "category_applied": codec.category_applied_decoder,
    "new_subscription": codec.new_subscription_decoder,
    "subscription": codec.subscription_decoder,
    "subscription_list": codec.subscription_list_decoder,
    "delivery_log": codec.delivery_log_decoder,
    "dead_letters": codec.dead_letters_decoder,
    "order_happened": codec.order_happened_decoder,
    "worker_happened": codec.worker_happened_decoder,
    "reassign": codec.reassign_decoder,
    "rate_order": codec.rate_order_decoder,
    "extend": codec.extend_decoder,
    "pause": codec.pause_decoder,
    "waive": codec.waive_decoder,
    "block": codec.block_decoder,
    "worker_standing": codec.worker_standing_decoder,
    "figures": codec.figures_decoder,
    "tip_order": codec.tip_order_decoder,
    "earnings_report": codec.earnings_report_decoder,
    "payouts": codec.payouts_decoder,
    "cities": codec.cities_decoder,
}


def _direction(path: Path) -> str:
    return path.name.split(".")[0]


def _kind(path: Path) -> str:
    """The sample's message: its ``type`` tag, or the HTTP body's name."""
    return path.name.split(".")[1]


def _decoder(path: Path) -> msgspec.json.Decoder[Any]:
    direction = _direction(path)
    return HTTP_DECODERS[_kind(path)] if direction == "http" else WS_DECODERS[direction]


def _tags(direction: str) -> set[str]:
    return {json_schema.tag(cls) for cls in json_schema.members(WS_UNIONS[direction])}


def _contains(outer: object, inner: object) -> bool:
    """True if ``outer`` holds every key of ``inner`` with an equal value, at every depth."""
    if isinstance(inner, dict):
        return isinstance(outer, dict) and all(
            key in outer and _contains(outer[key], value) for key, value in inner.items()
        )
    if isinstance(inner, list):
        return (
            isinstance(outer, list)
            and len(outer) == len(inner)
            and all(map(_contains, outer, inner))
        )
    return outer == inner


WS_SAMPLES = [path for path in SAMPLES if _direction(path) in WS_DECODERS]
FOREIGN = [
    pytest.param(direction, path, id=f"{direction}<-{path.name}")
    for direction in WS_DECODERS
    for path in WS_SAMPLES
    if _kind(path) not in _tags(direction)
]


def test_samples_exist_for_every_direction() -> None:
    """Every sample name starts with a known direction and there are samples at all."""
    assert SAMPLES
    assert {_direction(path) for path in SAMPLES} == {*WS_DECODERS, "http"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_decodes_as_its_name_says(path: Path) -> None:
    """A frozen sample decodes with its direction's decoder into the message its name names."""
    message = _decoder(path).decode(path.read_bytes())
    if _direction(path) in WS_DECODERS:
        assert json_schema.tag(type(message)) == _kind(path)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_reencodes_to_the_same_json(path: Path) -> None:
    """Re-encoding a sample keeps every field it has; only omitted defaults may be added."""
    original = json.loads(path.read_bytes())
    again = json.loads(codec.encode(_decoder(path).decode(path.read_bytes())))
    assert _contains(again, original), f"{path.name} re-encodes as {again}"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_message_round_trips(path: Path) -> None:
    """Encoding a message and decoding the result gives an equal message."""
    decoder = _decoder(path)
    message = decoder.decode(path.read_bytes())
    assert decoder.decode(codec.encode(message)) == message


def test_every_message_class_has_a_sample() -> None:
    """Each message of each direction, and each HTTP body, has at least one frozen sample."""
    expected = {(d, cls) for d, union in WS_UNIONS.items() for cls in json_schema.members(union)}
    expected |= {("http", cls) for cls in json_schema.HTTP_BODIES}
    found = {(_direction(path), type(_decoder(path).decode(path.read_bytes()))) for path in SAMPLES}
    missing = sorted(f"{d}.{cls.__name__}" for d, cls in expected - found)
    assert not missing, f"add a sample to protocol/samples/ for: {', '.join(missing)}"


@pytest.mark.parametrize("direction", WS_DECODERS)
def test_unknown_tag_is_rejected(direction: str) -> None:
    """A frame whose ``type`` no message of the direction has is refused as ``unknown_type``."""
    with pytest.raises(msgspec.ValidationError) as caught:
        WS_DECODERS[direction].decode(b'{"type": "teleport", "id": "x"}')
    assert codec.error_code(caught.value) == "unknown_type"


@pytest.mark.parametrize(("direction", "path"), FOREIGN)
def test_other_directions_frames_are_rejected(direction: str, path: Path) -> None:
    """A valid frame of another direction is ``unknown_type`` here, unless both share its tag."""
    with pytest.raises(msgspec.ValidationError) as caught:
        WS_DECODERS[direction].decode(path.read_bytes())
    assert codec.error_code(caught.value) == "unknown_type"


def _location(lat: str) -> bytes:
    return b'{"type": "location", "points": [{"lat": %b, "lng": 13.4, "at": 1}]}' % lat.encode()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(b'{"type": "ping"', "bad_json", id="truncated"),
        pytest.param(b"\xff\xfe", "bad_json", id="not-utf8"),
        pytest.param(b'{"type": "teleport"}', "unknown_type", id="unknown-type"),
        pytest.param(b'{"type": "accept"}', "missing_field", id="missing-offer-id"),
        pytest.param(b'{"offer_id": "berlin.x/1"}', "missing_field", id="missing-type"),
        pytest.param(b'{"type": "accept", "offer_id": 7}', "invalid_field", id="wrong-type"),
        pytest.param(b'{"type": "status", "status": "asleep"}', "invalid_field", id="bad-enum"),
        pytest.param(_location("90.0"), "out_of_range", id="lat-above-range"),
        pytest.param(_location("-85.1"), "out_of_range", id="lat-below-range"),
        pytest.param(_location("1e999"), "out_of_range", id="lat-infinite"),
    ],
)
def test_error_code_of_bad_frame(frame: bytes, code: str) -> None:
    """Each kind of bad frame maps to its stable protocol error code."""
    with pytest.raises(msgspec.DecodeError) as caught:
        codec.worker_decoder.decode(frame)
    assert codec.error_code(caught.value) == code


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_error_code_is_documented(code: str) -> None:
    """Every stable error code is explained in PROTOCOL.md."""
    assert f"`{code}`" in PROTOCOL_MD.read_text(encoding="utf-8")


STRUCTS = sorted(
    (
        cls
        for module in (messages, catalogue, webhooks)
        for cls in vars(module).values()
        if isinstance(cls, type)
        and issubclass(cls, msgspec.Struct)
        and cls.__module__ == module.__name__
    ),
    key=lambda cls: cls.__name__,
)
SECTION = re.compile(r"^#{2,} .*\((?P<name>\w+)\)$")
FIELD_ROW = re.compile(r"^\| `(?P<field>\w+)` \|")


def _documented_fields() -> dict[str, set[str]]:
    """The field names in each ``### ... (ClassName)`` section's table of PROTOCOL.md."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in PROTOCOL_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("##"):
            heading = SECTION.match(line)
            current = sections.setdefault(heading["name"], set()) if heading else None
        elif current is not None and (row := FIELD_ROW.match(line)):
            current.add(row["field"])
    return sections


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda cls: cls.__name__)
def test_struct_fields_are_documented(cls: type[msgspec.Struct]) -> None:
    """PROTOCOL.md has a section for each Struct whose table lists exactly its fields."""
    fields = {field.encode_name for field in msgspec.structs.fields(cls)}
    config = cls.__struct_config__
    if config.tag_field is not None:
        fields.add(config.tag_field)
    assert _documented_fields().get(cls.__name__) == fields


EXAMPLE = re.compile(r"^(?P<who>[WABCL]?)(?P<way>[<>]) (?P<json>\{.*)$")
MALFORMED = {"bad_json", "unknown_type", "missing_field", "invalid_field", "out_of_range"}


def _examples() -> list[Any]:
    """Each JSON line of PROTOCOL.md's examples, with the malformed-frame code its answer
    gives, if the next JSON line answers it with one."""
    lines = PROTOCOL_MD.read_text(encoding="utf-8").splitlines()
    found = [(n, m) for n, line in enumerate(lines, start=1) if (m := EXAMPLE.match(line))]
    cases = []
    for (number, match), (_, answer) in zip(found, [*found[1:], (0, None)], strict=True):
        code = None
        if match["way"] == ">" and answer is not None and answer["way"] == "<":
            code = json.loads(answer["json"]).get("code")
        refusal = code if code in MALFORMED else None
        cases.append(
            pytest.param(match["who"], match["way"], match["json"], refusal, id=str(number))
        )
    return cases


def _example_decoder(who: str, way: str, text: str) -> msgspec.json.Decoder[Any]:
    if who == "L":
        return codec.live_decoder
    if who:
        return codec.worker_decoder if way == ">" else codec.server_decoder
    if way == ">":
        return codec.create_order_decoder
    return codec.http_error_decoder if text.startswith('{"code"') else codec.order_view_decoder


@pytest.mark.parametrize(("who", "way", "text", "refusal"), _examples())
def test_documented_example_decodes(who: str, way: str, text: str, refusal: str | None) -> None:
    """Every example frame in PROTOCOL.md decodes, or fails with the code its answer shows."""
    decoder = _example_decoder(who, way, text)
    if refusal is None:
        decoder.decode(text.encode())
        return
    with pytest.raises(msgspec.DecodeError) as caught:
        decoder.decode(text.encode())
    assert codec.error_code(caught.value) == refusal


def test_schema_files_are_current() -> None:
    """The checked-in schema files are exactly what ``protocol.schema`` generates."""
    stale = [path.name for path in schema.stale_files()]
    assert not stale, f"stale {stale}: run `python -m protocol.schema` and commit the result"


def test_schema_check_names_missing_and_changed_files(tmp_path: Path) -> None:
    """``stale_files`` reports files that are missing or differ, and only those."""
    assert {path.name for path in schema.stale_files(tmp_path)} == set(schema.render())
    for name, text in schema.render().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "openapi.json").write_text("{}\n", encoding="utf-8")
    assert schema.stale_files(tmp_path) == [tmp_path / "openapi.json"]


def test_schema_check_cli_passes_on_current_files() -> None:
    """``python -m protocol.schema --check`` exits 0 when nothing is stale."""
    assert schema.main(["--check"]) == 0


def test_generated_documents_reference_only_defined_schemas() -> None:
    """Every ``$ref`` in the generated documents points at something the document defines."""
    for name, text in schema.render().items():
        document = json.loads(text)
        for ref in _refs(document):
            node: Any = document
            for part in ref.removeprefix("#/").split("/"):
                assert isinstance(node, dict) and part in node, f"{name}: dangling {ref}"
                node = node[part]


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_protocol_imports_nothing_from_server_or_simulator() -> None:
    """The wire format stands alone: no module in ``protocol/`` imports the server or tools."""
    banned = ("server", "simulator", "loadtest")
    for path in PROTOCOL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] in banned], f"{path.name}: {names}"


def _bounded(annotated: Any) -> st.SearchStrategy[float]:
    meta = get_args(annotated)[1]
    return st.floats(min_value=meta.ge, max_value=meta.le)


def _optional(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.none() | strategy


@given(
    st.builds(
        Fix,
        lat=_bounded(Latitude),
        lng=_bounded(Longitude),
        at=st.integers(min_value=0, max_value=2**63 - 1),
        accuracy=_optional(st.floats(min_value=0, allow_infinity=False)),
        heading=_optional(st.floats(min_value=0, max_value=360, exclude_max=True)),
        speed=_optional(st.floats(min_value=0, allow_infinity=False)),
    )
)
def test_any_valid_fix_round_trips(fix: Fix) -> None:
    """Any position sample within the documented ranges survives a location frame's round trip."""
    message = LocationReported(points=[fix])
    assert codec.worker_decoder.decode(codec.encode(message)) == message
