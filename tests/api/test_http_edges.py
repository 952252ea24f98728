"""The HTTP API's edges against a running server: coded 404 and 405 answers
with every allowed method, integers spelt as integral floats, query and path
values refused with 400, and a definition's errors at the field's own path."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect

from protocol import codec
from protocol.messages import Error, Welcome
from tests.support import (
    UNIT,
    Admin,
    Customer,
    ServerProcess,
    note,
    worker_token,
)
from tests.system.test_categories import grooming

NO_ORDER = "berlin.0000000000000000"  # a well-formed id no order has


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/admin/webhooks", {"GET", "HEAD", "POST"}),
        ("PATCH", "/v1/admin/categories/ride", {"GET", "HEAD", "PUT"}),
        ("PUT", "/v1/admin/webhooks/sub_0", {"GET", "HEAD", "DELETE"}),
        ("DELETE", "/v1/orders", {"POST"}),
    ],
)
async def test_405_is_coded_and_allows_every_method_of_the_path(
    admin: Admin, method: str, path: str, allowed: set[str]
) -> None:
    """A method the path does not take: 405 `method_not_allowed`, Allow naming all it takes."""
    r = await admin.http.request(method, path)
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


async def test_an_unknown_path_is_a_coded_404(admin: Admin, server: ServerProcess) -> None:
    """No such path, and /metrics on a node without a metrics token: 404 `not_found`, as JSON."""
    for path in ("/v1/nowhere", "/metrics"):
        r = await admin.http.get(path)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), path
        assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/v1/orders/{NO_ORDER}/tip", {"amount": 420.0}),
        (f"/v1/orders/{NO_ORDER}/rating", {"stars": 5.0}),
    ],
)
async def test_an_integral_float_is_an_integer(customer: Customer, path: str, body: Any) -> None:
    """`420.0` decodes as 420 (the order is then not found); `420.5` is an invalid field."""
    r = await customer.http.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found"), r.text
    half = {k: v + 0.5 for k, v in body.items()}
    r = await customer.http.post(path, json=half)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_field"), r.text
    assert r.json()["errors"][0]["field"] == next(iter(body))


async def test_an_operator_may_spell_seconds_as_integral_floats(admin: Admin, city: str) -> None:
    """Pause for 60.0 s pauses; extend by 60.0 s decodes (the order is then not found)."""
    r = await admin.http.post(f"/v1/admin/workers/{city}/w-int/pause", json={"for_s": 60.0})
    assert r.status_code == 200, r.text
    assert r.json()["paused_until"] is not None
    r = await admin.http.post(f"/v1/admin/orders/{NO_ORDER}/extend", json={"by_s": 60.0})
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found"), r.text


async def test_a_worker_frame_may_spell_integers_as_integral_floats(
    server: ServerProcess, city: str
) -> None:
    """`hello` with versions [1.0] is welcomed; [1.5] is an invalid field."""
    headers = {"Authorization": f"Bearer {worker_token('w-int', city)}"}
    async with connect(f"{server.ws_url}/v1/worker", additional_headers=headers) as ws:
        await ws.send('{"type": "hello", "versions": [1.5]}')
        refused = note(codec.server_decoder.decode(await asyncio.wait_for(ws.recv(), 5 * UNIT)))
        assert isinstance(refused, Error) and refused.code == "invalid_field", refused
        await ws.send('{"type": "hello", "versions": [1.0]}')
        welcome = codec.server_decoder.decode(await asyncio.wait_for(ws.recv(), 5 * UNIT))
        assert isinstance(welcome, Welcome), welcome


async def test_putting_a_category_under_a_bad_key_is_a_bad_request(admin: Admin) -> None:
    """A PUT under a key that cannot be one is 400 (a GET 404); so is a version that is not one."""
    body = msgspec.to_builtins(grooming())
    r = await admin.http.put("/v1/admin/categories/Bad%20Key", json=body)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_field"), r.text
    r = await admin.http.get("/v1/admin/categories/Bad%20Key")
    assert (r.status_code, r.json()["code"]) == (404, "category_not_found")
    for version, code in (("abc", "invalid_field"), ("0", "out_of_range"),
                          ("1000000001", "not found"), ("2147483648", "out_of_range")):  # fmt: skip
        r = await admin.http.get("/v1/admin/categories/ride", params={"version": version})
        if code == "not found":
            assert (r.status_code, r.json()["code"]) == (404, "category_not_found"), version
        else:
            assert (r.status_code, r.json()["code"]) == (400, code), version


async def test_a_bad_delivery_limit_is_a_bad_request(admin: Admin) -> None:
    """`limit` that is not a number is 400 `invalid_field`; 0 or 1001 is `out_of_range`."""
    new = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    sub = (await admin.http.post("/v1/admin/webhooks", json=new)).json()
    try:
        for limit, code in (("abc", "invalid_field"), ("0", "out_of_range"),
                            ("1001", "out_of_range")):  # fmt: skip
            r = await admin.http.get(f"/v1/admin/webhooks/{sub['id']}/deliveries",
                                     params={"limit": limit})  # fmt: skip
            assert (r.status_code, r.json()["code"]) == (400, code), limit
        r = await admin.http.get(f"/v1/admin/webhooks/{sub['id']}/dead", params={"limit": 5})
        assert r.status_code == 200
    finally:
        await admin.http.delete(f"/v1/admin/webhooks/{sub['id']}")


async def test_a_definition_error_names_the_fields_own_path(admin: Admin) -> None:
    """An unknown field is named at its own path; a second attribute of one name by its index."""
    d = msgspec.to_builtins(grooming())
    r = await admin.put_category({**d, "colour": "red"})
    assert r.json()["errors"][0]["field"] == "colour", r.text
    r = await admin.put_category({**d, "pricing": {**d["pricing"], "tax": 1}})
    assert r.json()["errors"][0]["field"] == "pricing.tax", r.text
    twice = {**d, "attributes": [*d["attributes"], d["attributes"][0]]}
    r = await admin.put_category(twice)
    where = f"attributes[{len(d['attributes'])}].name"
    assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [(where, "duplicate")], r.text


async def test_a_body_of_blanks_is_not_an_empty_body(admin: Admin, city: str) -> None:
    """Block with no body blocks; with a body of a newline it is 400 `bad_json`."""
    url = f"/v1/admin/workers/{city}/w-blank/block"
    r = await admin.http.post(url, content=b"\n", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "bad_json"), r.text
    r = await admin.http.post(url)
    assert (r.status_code, r.json()["blocked"]) == (200, True), r.text
