"""Customers' HTTP endpoints: creation with idempotency, reads, access, bad input."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from protocol.messages import Ack
from tests.support import Customer, ServerProcess, WorkerClient


async def test_same_idempotency_key_and_body_return_the_same_order(
    customer: Customer, city: str
) -> None:
    """A retried create with the same key and body returns the same order (200, not 201)."""
    first = await customer.create(city, key="k-1")
    again = await customer.create(city, key="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = await customer.create(city, key="k-2")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


async def test_concurrent_retries_create_one_order(customer: Customer, city: str) -> None:
    """Ten simultaneous creates with one key make exactly one order."""
    replies = await asyncio.gather(*(customer.create(city, key="burst") for _ in range(10)))
    assert len({r.json()["id"] for r in replies}) == 1
    assert sorted(r.status_code for r in replies).count(201) == 1


async def test_same_key_different_body_is_refused(customer: Customer, city: str) -> None:
    """Reusing a key for a different order is refused with 409 idempotency_conflict."""
    await customer.create(city, key="k")
    clash = await customer.create(city, lat=52.6, key="k")
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"


async def test_a_refused_create_leaves_its_key_free(customer: Customer, city: str) -> None:
    """A 400 binds nothing: the corrected body with the key is created, then replayed."""
    bad = await customer.create(city, key="fix-me", attributes={"weight_kg": 3})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_field", bad.text
    good = await customer.create(city, key="fix-me")
    assert good.status_code == 201, good.text
    again = await customer.create(city, key="fix-me")
    assert again.status_code == 200 and again.json()["id"] == good.json()["id"]
    clash = await customer.create(city, lat=52.6, key="fix-me")
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"


async def test_keys_are_per_customer(server: ServerProcess, customer: Customer, city: str) -> None:
    """Two customers using the same key get two orders."""
    other = Customer(server.url)
    a = await customer.create(city, key="same")
    b = await other.create(city, key="same")
    assert a.json()["id"] != b.json()["id"]
    await other.close()


async def test_customer_sees_only_own_orders(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """Another customer gets 404 for an order that is not theirs, and cannot cancel it."""
    oid = (await customer.create(city)).json()["id"]
    stranger = Customer(server.url)
    assert (await stranger.http.get(f"/v1/orders/{oid}")).status_code == 404
    r = await stranger.http.post(f"/v1/orders/{oid}/cancel")
    assert r.status_code == 404 and r.json()["code"] == "order_not_found"
    assert (await customer.order(oid))["state"] != "cancelled"
    await stranger.close()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope", "bad_json"),
        (b'{"city": "x", "skill": "delivery"}', "missing_field"),
        (b'{"city": "X Y", "skill": "delivery", "pickup": {"lat": 1, "lng": 1}}', "invalid_field"),
        (b'{"city": "x", "skill": "delivery", "pickup": {"lat": 95, "lng": 1}}', "out_of_range"),
        (
            b'{"city": "x", "skill": "delivery", "pickup": {"lat": 1, "lng": 1}, "tip": 5}',
            "invalid_field",
        ),
    ],
)
async def test_bad_body_is_400_with_code(customer: Customer, body: bytes, code: str) -> None:
    """A malformed order body gets 400 with a stable code and creates nothing."""
    r = await customer.http.post("/v1/orders", content=body)
    assert r.status_code == 400 and r.json()["code"] == code


async def test_missing_or_wrong_token(server: ServerProcess, city: str) -> None:
    """No token is 401; a worker token on a customer endpoint is 403."""
    body = {"city": city, "skill": "delivery", "pickup": {"lat": 1, "lng": 1}}
    async with httpx.AsyncClient(base_url=server.url) as anon:
        r = await anon.post("/v1/orders", json=body)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        from tests.support import worker_token

        r = await anon.post(
            "/v1/orders", json=body, headers={"Authorization": f"Bearer {worker_token('w', city)}"}
        )
        assert r.status_code == 403 and r.json()["code"] == "forbidden"


async def test_unknown_order_ids(customer: Customer) -> None:
    """Ids that are not orders, or orders that do not exist, are 404."""
    for oid in ("nope", "metro.0123456789abcdef", "../../etc"):
        assert (await customer.http.get(f"/v1/orders/{oid}")).status_code == 404


async def test_bad_idempotency_key(customer: Customer, city: str) -> None:
    """An Idempotency-Key with spaces or over 64 characters is refused with bad_request."""
    for key in ("has space", "x" * 65):
        r = await customer.create(city, key=key)
        assert r.status_code == 400 and r.json()["code"] == "bad_request"


async def test_view_shows_assigned_worker_position(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """Once assigned, the order shows its worker's last position: where and when the phone
    took it (``at``, the phone's clock) and when the server got it (``seen_at``)."""
    w = await WorkerClient.connect(server.ws_url, "w", city, lat=52.5205, lng=13.4012)
    oid = (await customer.create(city)).json()["id"]
    assert await w.accept_next() == oid
    phone = int(time.time() * 1000) - 20_000  # a phone 20 s slow
    fix = {"lat": 52.5210, "lng": 13.4015, "at": phone}
    assert isinstance(await w.request({"type": "location", "points": [fix]}), Ack)
    where = (await customer.order(oid))["position"]
    assert where["worker"] == "w" and abs(where["lat"] - 52.5210) < 1e-5
    assert where["at"] == phone and abs(where["seen_at"] - time.time() * 1000) < 2000
    await w.close()
