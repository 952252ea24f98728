"""Category definitions as files: the built-in examples in this folder, and
any TOML or JSON file an operator writes.

A file holds one definition (``protocol/catalogue.py``), TOML or JSON by its
suffix. :func:`load` reads and checks it completely: a file that does not
decode, or a definition the rules refuse, raises :class:`BadDefinition` with
every problem and its path, before anything is stored.

Imports ``protocol/`` and the core's category rules only; the node's
catalogue (``server/services/node_catalogue.py``), the admin API and
``dispatch category`` use it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec

from protocol import codec
from protocol.catalogue import CategoryDefinition, FieldError
from server.core import category_rules


class BadDefinition(ValueError):
    """A definition that does not decode or that the rules refuse."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        lines = "\n".join(f"  {e.field}: {e.message} ({e.code})" for e in errors)
        super().__init__(f"{source}: not a valid category definition\n{lines}")
        self.source = source
        self.errors = errors


def decode_error(exc: msgspec.DecodeError) -> FieldError:
    """A decoding failure as one field error, with its path."""
    text = str(exc).partition(" - at `")[0]
    return FieldError(codec.error_field(exc) or "(definition)", codec.error_code(exc), text)


def parse(data: bytes, source: str, *, toml: bool = False) -> CategoryDefinition:
    """A definition from a file's bytes (TOML or JSON), checked completely."""
    try:
        if toml:
            definition = msgspec.toml.decode(data, type=CategoryDefinition)
        else:
            definition = codec.decode(codec.category_definition_decoder, data)
    except msgspec.DecodeError as exc:
        raise BadDefinition(source, [decode_error(exc)]) from exc
    errors = category_rules.check(definition)
    if errors:
        raise BadDefinition(source, errors)
    return definition


def load(path: Path) -> CategoryDefinition:
    """The definition in a ``.toml`` or ``.json`` file, checked completely."""
    if path.suffix not in (".toml", ".json"):
        raise BadDefinition(
            str(path), [FieldError("(file)", "invalid_field", "expected .toml or .json")]
        )
    return parse(path.read_bytes(), str(path), toml=path.suffix == ".toml")


def builtins() -> list[CategoryDefinition]:
    """The example categories shipped with the server, by key."""
    folder = resources.files(__name__)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    return [parse(f.read_bytes(), f.name, toml=True) for f in files]
