"""The whole of "add a category", in one piece, against one running server
that is never restarted: define pet grooming with the operator's command,
refuse an order with a bad attribute (the field named), quote a good one,
dispatch it, walk its steps with the customer's approval of a large dog, and
receive every one of its events as a webhook whose signature the Standard
Webhooks reference library verifies. The README's "Add a category" is this
sequence; the test prints how long it took."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.messages import Ack
from tests.support import (
    Admin,
    Customer,
    Receiver,
    RedisProcess,
    ServerProcess,
    WorkerClient,
    category_cli,
    unique_city,
)

GROOMING = Path(__file__).parent.parent / "data" / "pet-grooming.toml"
PHOTO = "https://photos.example/rex.jpg"
EVENTS = [
    "order.created",
    "order.dispatching",
    "order.offered",
    "order.assigned",
    "order.arrived",
    "order.approve_large_dog",
    "order.groomed",
    "order.photo_sent",
    "order.completed",
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    redis = RedisProcess(Path(tmp_path_factory.mktemp("proof")), appendonly=False)
    url = redis.start()
    proc = ServerProcess(url, env={"DISPATCH_WEBHOOK_POLL_MS": "20"}).start()
    yield proc
    proc.stop()
    redis.stop()


async def test_a_new_category_from_file_to_signed_webhooks_with_no_restart(
    node: ServerProcess, tmp_path: Path
) -> None:
    """Pet grooming: defined live, a bad weight refused, a 42 kg retriever quoted
    4600, dispatched, its approval and steps walked, every event signed."""
    started = time.monotonic()
    city, key = unique_city(), f"pet-grooming-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{key}.toml"
    path.write_text(GROOMING.read_text().replace('key = "pet-grooming"', f'key = "{key}"'))
    receiver = await Receiver().start()
    admin, customer = Admin(node.url), Customer(node.url)
    r = await admin.http.post("/v1/admin/webhooks", json={
        "url": receiver.url, "events": ["order.*"], "categories": [key]})  # fmt: skip
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]

    diff = category_cli(node.url, "diff", str(path))
    assert diff.returncode == 0 and f"key: None -> '{key}'" in diff.stdout, diff.stderr
    applied = category_cli(node.url, "apply", str(path))
    assert applied.stdout.strip() == f"{key}: applied, version 1", applied.stderr

    pickup = {"lat": 52.52, "lng": 13.40}
    bad = await customer.http.post("/v1/orders", json={
        "city": city, "category": key, "pickup": pickup,
        "attributes": {"breed": "poodle", "weight_kg": 81}})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_attributes"
    assert [(e["field"], e["code"]) for e in bad.json()["errors"]] == [
        ("attributes.weight_kg", "out_of_range")
    ]
    groomer = await WorkerClient.connect(node.ws_url, "groomer-1", city, skills=("grooming",))
    good = await customer.http.post("/v1/orders", json={
        "city": city, "category": key, "pickup": pickup,
        "attributes": {"breed": "retriever", "weight_kg": 42}})  # fmt: skip
    assert good.status_code == 201, good.text
    oid, quote = good.json()["id"], good.json()["quote"]
    assert (quote["total"], quote["currency"]) == (4600, "EUR")

    offer = await groomer.offer()
    assert offer.quote is not None and offer.quote.total == 4600
    assert offer.steps is not None and [s.name for s in offer.steps] == [
        "arrived", "approve_large_dog", "groomed", "photo_sent", "completed"]  # fmt: skip
    ack = await groomer.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.job is not None and ack.job.step == "arrived"
    await groomer.request({"type": "progress", "order_id": oid, "step": "arrived"})
    early = await groomer.request({"type": "progress", "order_id": oid, "step": "groomed"})
    assert getattr(early, "code", None) == "illegal_step"  # the customer's approval comes first
    r = await customer.http.post(f"/v1/orders/{oid}/steps/approve_large_dog",
                                 json={"decision": "approve"})  # fmt: skip
    assert r.status_code == 200 and r.json()["step"] == "groomed", r.text
    for step, data in (
        ("groomed", None),
        ("photo_sent", {"photo_url": PHOTO}),
        ("completed", None),
    ):
        frame = {"type": "progress", "order_id": oid, "step": step}
        reply = await groomer.request({**frame, "data": data} if data else frame)
        assert isinstance(reply, Ack), reply
    assert (await customer.order(oid))["state"] == "completed"

    got = await receiver.wait_for(lambda g: len(g) >= len(EVENTS), timeout=10.0)
    assert sorted(g["type"] for g in got) == sorted(EVENTS)
    assert {g["data"]["order_id"] for g in got} == {oid} and receiver.bad_signatures == 0
    approval = next(g for g in got if g["type"] == "order.approve_large_dog")["data"]["event"]
    assert (approval["by"], approval["reason"]) == ("customer", "approved")
    photo = next(g for g in got if g["type"] == "order.photo_sent")["data"]["event"]
    assert photo["data"] == {"photo_url": PHOTO}
    print(f"\nadd a category, from the file to the last signed webhook: "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip
    await groomer.close()
    await admin.close()
    await customer.close()
    await receiver.stop()
