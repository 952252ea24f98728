"""The OpenAPI document and the server agree: the document the server serves
is the generated one, names every HTTP route, requires a body exactly where
the server does, and schemathesis, run with every check and every phase
against a real server, finds nothing.

schemathesis runs as its ``st`` CLI on a server of its own (its own Redis too:
it creates, pauses and blocks at random), with a token for each of the
document's security schemes (``tests/schemathesis.toml``), a bounded number
of examples per operation and a fixed seed (``DISPATCH_ST_SEED`` to try
another, ``DISPATCH_ST_EXAMPLES`` for more examples).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protocol import schema
from server.api.app import HTTP_ROUTES
from tests.support import (
    UNIT,
    RedisProcess,
    ServerProcess,
    admin_token,
    customer_token,
    repo_root,
    worker_token,
)

METRICS_TOKEN = "st-metrics-token"
CITY = "metro"  # the one city it serves (tests/schemathesis.toml names it too)
DOCUMENT = json.loads((schema.SCHEMA_DIR / "openapi.json").read_text())


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on a Redis of its own serving one city, with a metrics token and a high
    order rate."""
    redis = RedisProcess(tmp_path_factory.mktemp("st-redis"), appendonly=False)
    env = {"DISPATCH_METRICS_TOKEN": METRICS_TOKEN, "DISPATCH_CITIES": CITY,
           "DISPATCH_ORDER_RATE_PER_S": "1000", "DISPATCH_ORDER_BURST": "1000",
           # its webhooks point anywhere schemathesis makes up: give up on them soon
           "DISPATCH_WEBHOOK_TIMEOUT_S": str(0.5 * UNIT)}  # fmt: skip
    proc = ServerProcess(redis.start(), env=env).start()
    yield proc
    proc.stop()
    redis.stop()


def _as_documented(path: str) -> str:
    """A server route's path as the document writes it (``{order_id}`` is ``{id}``)."""
    renamed = {"order_id": "id", "sub_id": "id"}
    return re.sub(r"\{(\w+)\}", lambda m: "{" + renamed.get(m[1], m[1]) + "}", path)


def test_the_document_names_every_route_and_method() -> None:
    """Each HTTP route of the server is a path of the document with the same methods."""
    served: dict[str, set[str]] = {}
    for path, _, methods in HTTP_ROUTES:
        served.setdefault(_as_documented(path), set()).update(m.lower() for m in methods)
    assert {path: set(ops) for path, ops in DOCUMENT["paths"].items()} == served


def test_the_server_serves_the_generated_document(own_server: ServerProcess) -> None:
    """GET /openapi.json answers the file protocol/schema/openapi.json, without a token."""
    r = httpx.get(f"{own_server.url}/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == DOCUMENT


@pytest.mark.timeout(150 * UNIT)
def test_schemathesis_finds_nothing(own_server: ServerProcess, tmp_path: Path) -> None:
    """Every check, every phase, every operation with its role's token: no failure."""
    env = {
        **os.environ,
        "DISPATCH_ST_CUSTOMER_TOKEN": customer_token("st-customer"),
        "DISPATCH_ST_ADMIN_TOKEN": admin_token("st-operator"),
        "DISPATCH_ST_WORKER_TOKEN": worker_token("st-worker", CITY),
        "DISPATCH_ST_METRICS_TOKEN": METRICS_TOKEN,
    }
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "--config-file", str(repo_root() / "tests" / "schemathesis.toml"), "run",
        f"{own_server.url}/openapi.json", "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", os.environ.get("DISPATCH_ST_EXAMPLES", "10"),
        "--seed", os.environ.get("DISPATCH_ST_SEED", "19"),
        # one worker: hypothesis describing its filters in two threads at once trips
        # CPython 3.11's "AST constructor recursion depth mismatch"; it is no slower here
        "--workers", "1", "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=120 * UNIT, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-4000:]


def _bodies() -> list[tuple[str, str, bool]]:
    """Each operation with a request body: its method, path, and whether the body is required."""
    return [(method.upper(), path, op["requestBody"]["required"])
            for path, item in DOCUMENT["paths"].items() for method, op in item.items()
            if "requestBody" in op]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "required"), _bodies())
async def test_an_empty_body_is_refused_exactly_where_one_is_required(
    server: ServerProcess, city: str, method: str, path: str, required: bool
) -> None:
    """No body: 400 where the document requires one; anything else where it does not."""
    values = {"id": "berlin.0000000000000000", "key": "ride", "step": "approve", "city": city,
              "worker_id": "w-empty"}  # fmt: skip
    url = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)
    token = admin_token() if path.startswith("/v1/admin/") else customer_token("c-empty")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.request(method, url, headers={"Authorization": f"Bearer {token}"})
    assert (r.status_code == 400) == required, (r.status_code, r.text)
