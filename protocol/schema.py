"""Machine-readable descriptions of the wire format, generated from the Structs.

Responsible for the files in ``protocol/schema/``:

- ``messages.schema.json``: a JSON Schema (2020-12) of every frame and HTTP body;
- ``asyncapi.json``: an AsyncAPI 3.0 document of the two WebSocket channels;
- ``openapi.json``: an OpenAPI 3.1 document of the HTTP endpoints.

Each is rendered by its own module (``protocol/json_schema.py``,
``protocol/asyncapi.py``, ``protocol/openapi.py``); this one is the command
that writes them. Every schema comes from :mod:`protocol.messages` (and
:mod:`protocol.catalogue`) through
:func:`msgspec.json.schema_components`, so the files only drift when someone
forgets to regenerate them, and ``tests/protocol/test_wire_format.py`` catches that. This
module imports nothing from ``server`` or ``simulator``.

Run ``python -m protocol.schema`` after changing a message; with ``--check`` it
writes nothing, names the stale files and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from protocol.asyncapi import asyncapi
from protocol.json_schema import json_schema
from protocol.openapi import openapi

SCHEMA_DIR = Path(__file__).parent / "schema"


def render() -> dict[str, str]:
    """Every generated file's name (in ``protocol/schema/``) and its text."""
    documents = {
        "messages.schema.json": json_schema(),
        "asyncapi.json": asyncapi(),
        "openapi.json": openapi(),
    }
    return {
        name: json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, doc in documents.items()
    }


def stale_files(directory: Path = SCHEMA_DIR) -> list[Path]:
    """The files in ``directory`` that are missing or differ from :func:`render`."""
    stale = []
    for name, text in render().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the schema files; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m protocol.schema", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (run `python -m protocol.schema`)", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
