"""Categories against a running server: the admin API, orders of a category
(attributes checked field by field, quoted, the version pinned), offers and
jobs that carry the category, versions, retiring, and every node in step."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from protocol.catalogue import CategoryDefinition, DispatchPolicy, Pricing
from protocol.messages import Ack, OfferMade
from server import categories
from server.services.node_catalogue import Catalogue
from server.store.catalogue import CatalogueStore
from server.store.cluster import open_link
from server.store.redis_store import Store
from tests.support import (
    UNIT,
    Admin,
    Customer,
    ServerProcess,
    WorkerClient,
    category_cli,
    customer_token,
)

GROOMING = Path(__file__).parent.parent / "data" / "pet-grooming.toml"
DOG = {"breed": "poodle", "weight_kg": 12.0}


def grooming(key: str | None = None, **changes: Any) -> CategoryDefinition:
    """The README's pet-grooming category under a key of its own."""
    d = categories.load(GROOMING)
    return msgspec.structs.replace(d, key=key or f"groom-{uuid.uuid4().hex[:8]}", **changes)


async def order(customer: Customer, city: str, key: str, attrs: dict[str, Any], **kw: Any) -> Any:
    return await customer.create(city, skill=None, category=key, attributes=attrs, **kw)


async def test_the_builtin_categories_are_there(admin: Admin) -> None:
    """A server with defaults seeds the four shipped examples."""
    listed = (await admin.http.get("/v1/admin/categories")).json()["categories"]
    keys = {c["definition"]["key"] for c in listed}
    assert {"express-delivery", "housekeeping", "beauty", "ride"} <= keys
    assert {c["updated_by"] for c in listed if c["definition"]["key"] == "ride"} == {"config"}


async def test_the_admin_api_needs_an_admin_token(server: ServerProcess) -> None:
    """No token is 401; a customer's token is 403."""
    async with Customer(server.url).http as http:
        r = await http.get("/v1/admin/categories")
        assert (r.status_code, r.json()["code"]) == (403, "forbidden")
        r = await http.get("/v1/admin/categories", headers={"Authorization": ""})
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    assert customer_token("x")


async def test_a_definition_is_versioned_and_a_repeat_changes_nothing(admin: Admin) -> None:
    """First put is version 1 (201), a change is 2, the same again is no change."""
    d = grooming()
    r = await admin.put_category(d)
    assert (r.status_code, r.json()["category"]["version"], r.json()["changed"]) == (201, 1, True)
    assert r.json()["category"]["updated_by"] == "ops-1"
    cheaper = msgspec.structs.replace(d, pricing=Pricing(base=1000))
    r = await admin.put_category(cheaper)
    assert (r.status_code, r.json()["category"]["version"]) == (200, 2)
    r = await admin.put_category(cheaper)
    assert (r.json()["category"]["version"], r.json()["changed"]) == (2, False)
    old = (await admin.category(d.key, version=1)).json()
    assert old["version"] == 1 and old["definition"]["pricing"]["base"] == 2500
    r = await admin.category(d.key, version=7)
    assert (r.status_code, r.json()["code"]) == (404, "category_not_found")


async def test_a_toml_body_is_taken(admin: Admin) -> None:
    """The file an operator wrote can be put as it is."""
    key = f"groom-{uuid.uuid4().hex[:8]}"
    text = GROOMING.read_text().replace('key = "pet-grooming"', f'key = "{key}"')
    r = await admin.put_category(text, toml=True, key=key)
    assert r.status_code == 201, r.text


async def test_a_bad_definition_names_every_problem(admin: Admin) -> None:
    """A broken workflow and a condition on a missing attribute: both named, nothing stored."""
    d = grooming()
    steps = [msgspec.structs.replace(d.steps[0], next="nowhere"), *d.steps[1:]]
    bad = msgspec.to_builtins(msgspec.structs.replace(d, steps=steps))
    bad["steps"][1]["when"]["attribute"] = "height"
    r = await admin.put_category(bad)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_category")
    fields = [e["field"] for e in r.json()["errors"]]
    assert "steps[0].next" in fields and "steps[1].when.attribute" in fields
    assert (await admin.category(d.key)).status_code == 404
    r = await admin.put_category({**bad, "steps": "x"})
    assert r.json()["errors"][0]["field"] == "steps"
    r = await admin.put_category(msgspec.to_builtins(d), key="another-key")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_field")


async def test_an_order_with_bad_attributes_is_refused_field_by_field(
    admin: Admin, customer: Customer, city: str
) -> None:
    """Out of range, not in the enum, unknown, missing: one error each, no order."""
    d = grooming()
    await admin.put_category(d)
    r = await order(customer, city, d.key, {"weight_kg": 81, "coat": "curly", "colour": "red"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_attributes")
    errors = {e["field"]: e["code"] for e in r.json()["errors"]}
    assert errors == {
        "attributes.weight_kg": "out_of_range",
        "attributes.coat": "invalid_field",
        "attributes.colour": "unknown_attribute",
        "attributes.breed": "missing_field",
    }
    r = await order(customer, city, d.key, {"breed": ["poodle"]})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "attributes"


async def test_order_form_mistakes_have_codes(customer: Customer, city: str) -> None:
    """Unknown category, both a skill and a category, neither."""
    r = await order(customer, city, "no-such-category", {})
    assert (r.status_code, r.json()["code"]) == (400, "unknown_category")
    r = await customer.create(city, category="ride")
    assert (r.status_code, r.json()["code"]) == (400, "invalid_field")
    r = await customer.create(city, skill=None)
    assert (r.status_code, r.json()["code"]) == (400, "missing_field")
    r = await customer.create(city, attributes={"a": 1})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_field")


async def test_an_order_is_quoted_pinned_and_offered_with_its_steps(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The quote comes back at creation; the offer and the job carry category,
    quote and steps; the offer lasts the category's offer timeout (past the
    server's 3 s max dispatch time: the category's 20 s is in force)."""
    d = grooming(dispatch=DispatchPolicy(offer_timeout_s=7.0 * UNIT, max_dispatch_s=20 * UNIT))
    await admin.put_category(d)
    groomer = await WorkerClient.connect(server.ws_url, "g-1", city, skills=("grooming",))
    r = await order(customer, city, d.key, {**DOG, "weight_kg": 42})
    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["category"], view["category_version"], view["skill"]) == (d.key, 1, "grooming")
    assert view["quote"]["total"] == 2500 + 50 * 42 and view["quote"]["currency"] == "EUR"
    assert view["attributes"] == {"breed": "poodle", "weight_kg": 42, "coat": "medium"}
    offer = await groomer.offer()
    assert offer.category == d.key and offer.quote is not None and offer.quote.total == 4600
    assert [s.name for s in offer.steps or []] == [s.name for s in d.steps]
    assert offer.expires_at - offer.sent_at == int(7000 * UNIT)
    ack = await groomer.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.job is not None
    assert ack.job.category == d.key and ack.job.quote == offer.quote
    assert [s.kind for s in ack.job.steps or []][:2] == ["action", "approval"]
    await groomer.close()


async def test_a_change_applies_to_new_orders_only(
    admin: Admin, customer: Customer, city: str
) -> None:
    """An order keeps the version and price it was created with."""
    d = grooming()
    await admin.put_category(d)
    first = (await order(customer, city, d.key, DOG)).json()
    await admin.put_category(msgspec.structs.replace(d, pricing=Pricing(base=900)))
    second = (await order(customer, city, d.key, DOG)).json()
    assert (second["category_version"], second["quote"]["total"]) == (2, 900)
    again = await customer.order(first["id"])
    assert (again["category_version"], again["quote"]["total"]) == (1, 2500 + 600)


async def test_retiring_refuses_new_orders_and_leaves_open_ones(
    admin: Admin, customer: Customer, city: str
) -> None:
    """A retired category answers category_retired; restoring takes orders again."""
    d = grooming()
    await admin.put_category(d)
    open_one = (await order(customer, city, d.key, DOG)).json()["id"]
    r = await admin.http.post(f"/v1/admin/categories/{d.key}/retire")
    assert r.json()["category"]["retired"] is True
    r = await order(customer, city, d.key, DOG)
    assert (r.status_code, r.json()["code"]) == (409, "category_retired")
    assert (await customer.order(open_one))["state"] == "dispatching"
    await admin.http.post(f"/v1/admin/categories/{d.key}/restore")
    assert (await order(customer, city, d.key, DOG)).status_code == 201
    r = await admin.http.post("/v1/admin/categories/never-was/retire")
    assert (r.status_code, r.json()["code"]) == (404, "category_not_found")


async def test_every_skill_of_the_category_is_needed(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """A worker with the first skill but not the second is not offered the order."""
    d = grooming(skills=["grooming", "cats"])
    await admin.put_category(d)
    dogs_only = await WorkerClient.connect(server.ws_url, "g-dog", city, skills=("grooming",))
    both = await WorkerClient.connect(
        server.ws_url, "g-both", city, skills=("grooming", "cats"), lat=52.53
    )
    oid = (await order(customer, city, d.key, DOG)).json()["id"]
    offer = await both.offer()
    assert offer.order_id == oid
    assert not [m for m in await dogs_only.silent(0.3) if isinstance(m, OfferMade)]
    await dogs_only.close()
    await both.close()


async def test_a_code_is_made_for_a_category_that_asks_for_one(
    admin: Admin, customer: Customer, city: str
) -> None:
    """Express delivery hands over against a four-digit code only its customer sees."""
    view = (await order(customer, city, "express-delivery", {"weight_kg": 2})).json()
    assert len(view["code"]) == 4 and view["code"].isdigit()
    assert view["quote"]["total"] == 500  # the minimum: no dropoff, no distance
    groomed = (await order(customer, city, "beauty", {"treatment": "haircut"})).json()
    assert groomed.get("code") is None and groomed["quote"]["total"] == 2000 + 50 * 60


async def test_another_node_sees_a_change_within_a_second(
    admin: Admin, second: ServerProcess
) -> None:
    """A change made through one node is in force on another within a second."""
    d = grooming()
    await admin.put_category(d)
    other = Admin(second.url)
    started = time.monotonic()
    while (await other.category(d.key)).status_code != 200:
        assert time.monotonic() - started < 1.0 * UNIT
        await asyncio.sleep(0.01)
    await admin.put_category(msgspec.structs.replace(d, pricing=Pricing(base=1)))
    started = time.monotonic()
    while (await other.category(d.key)).json()["version"] != 2:
        assert time.monotonic() - started < 1.0 * UNIT
        await asyncio.sleep(0.01)
    await other.close()


async def test_a_node_that_missed_the_message_catches_up(redis_url: str) -> None:
    """With no pub/sub at all, the change counter alone brings a node up to date."""
    store = Store(open_link(redis_url, 2.0, 2.0))
    watcher = Catalogue(CatalogueStore(store), poll_s=0.05)
    await watcher.refresh()
    task = asyncio.create_task(watcher.run())
    d = grooming()
    await CatalogueStore(store).apply(d, "ops-1")
    async with asyncio.timeout(2 * UNIT):
        while d.key not in watcher.categories:
            await asyncio.sleep(0.01)
    task.cancel()
    await store.link.aclose()


def test_the_category_command_diffs_applies_lists_and_shows(
    server: ServerProcess, tmp_path: Path
) -> None:
    """diff names the changes, apply puts them (twice: no change), list and show
    read them back; a bad file is refused with its path, nothing sent."""
    key = f"groom-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{key}.toml"
    path.write_text(GROOMING.read_text().replace('key = "pet-grooming"', f'key = "{key}"'))
    diff = category_cli(server.url, "diff", str(path))
    assert diff.returncode == 0 and f"key: None -> '{key}'" in diff.stdout, diff.stderr
    first = category_cli(server.url, "apply", str(path))
    assert first.stdout.strip() == f"{key}: applied, version 1", first.stderr
    assert (
        category_cli(server.url, "apply", str(path)).stdout.strip()
        == f"{key}: unchanged, version 1"
    )
    path.write_text(path.read_text().replace("base = 2500", "base = 2600"))
    assert (
        category_cli(server.url, "diff", str(path)).stdout.splitlines()[0]
        == "pricing.base: 2500 -> 2600"
    )
    assert "version 2" in category_cli(server.url, "apply", str(path)).stdout
    listed = category_cli(server.url, "list").stdout
    assert any(line.split()[:3] == [key, "v2", "live"] for line in listed.splitlines())
    shown = json.loads(category_cli(server.url, "show", key, "--version", "1").stdout)
    assert shown["definition"]["pricing"]["base"] == 2500
    path.write_text(path.read_text().replace('on_reject = "cancel"', 'on_reject = "nowhere"'))
    bad = category_cli(server.url, "apply", str(path))
    assert bad.returncode == 1 and "steps[1].on_reject" in bad.stderr
    assert json.loads(category_cli(server.url, "show", key).stdout)["version"] == 2


async def test_a_job_uses_its_categorys_capacity_units(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Two-unit jobs: a capacity-3 worker takes one, is passed over for the next
    (room 1: it goes to the farther worker), takes a one-unit job, then is full."""
    d = grooming(skills=["delivery"], dispatch=DispatchPolicy(capacity_units=2))
    assert (await admin.put_category(d)).status_code == 201
    big = await WorkerClient.connect(server.ws_url, "big", city, capacity=3, lng=13.4011)
    small = await WorkerClient.connect(server.ws_url, "small", city, capacity=2, lng=13.43)
    first = (await order(customer, city, d.key, DOG)).json()["id"]
    ack = await big.request({"type": "accept", "offer_id": (await big.offer()).offer_id})
    assert isinstance(ack, Ack) and ack.state == "available"
    second = (await order(customer, city, d.key, DOG)).json()["id"]
    assert (await small.offer()).order_id == second
    assert not [m for m in await big.silent(0.3) if isinstance(m, OfferMade)]
    third = (await customer.create(city)).json()["id"]  # by bare skill: one unit
    offer = await big.offer()
    assert offer.order_id == third
    ack = await big.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.state == "on_job"
    assert (await admin.http.post(f"/v1/admin/orders/{first}/cancel")).status_code == 200
    standing = (await admin.http.get(f"/v1/admin/workers/{city}/big")).json()
    assert (standing["state"], standing["jobs"]) == ("available", [third])
    await big.close()
    await small.close()


async def test_arrivals_within_the_categorys_promise_count_as_on_time(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Each arrival at an order of a category that promises one is timed from the
    accept: four at once are on time, one after the promise is late; the share
    shows once there are enough (DISPATCH_MIN_SAMPLES, 5)."""
    promise = 0.4 * UNIT
    d = grooming(skills=["delivery"], dispatch=DispatchPolicy(arrive_within_s=promise))
    assert (await admin.put_category(d)).status_code == 201
    w = await WorkerClient.connect(server.ws_url, "timed", city, lng=13.4011)
    for n in range(5):
        oid = (await order(customer, city, d.key, DOG)).json()["id"]
        await w.request({"type": "accept", "offer_id": (await w.offer()).offer_id})
        if n == 4:
            await asyncio.sleep(promise + 0.2 * UNIT)
        ack = await w.request({"type": "progress", "order_id": oid, "step": "arrived"})
        assert isinstance(ack, Ack), ack
        assert (await admin.http.post(f"/v1/admin/orders/{oid}/cancel")).status_code == 200
        if n == 0:
            _, month = (await admin.http.get(f"/v1/admin/workers/{city}/timed")).json()[
                "performance"
            ]
            assert (month["arrivals"], month["on_time"]) == (1, None)
    _, month = (await admin.http.get(f"/v1/admin/workers/{city}/timed")).json()["performance"]
    assert (month["arrivals"], month["on_time"]) == (5, 0.8)
    # by bare skill (no promise): the arrival is not timed
    oid = (await customer.create(city)).json()["id"]
    await w.request({"type": "accept", "offer_id": (await w.offer()).offer_id})
    await w.request({"type": "progress", "order_id": oid, "step": "arrived"})
    _, month = (await admin.http.get(f"/v1/admin/workers/{city}/timed")).json()["performance"]
    assert (month["arrivals"], month["accepted"]) == (5, 6)
    await w.close()
