"""Workflows against running servers: a category's steps walked by the worker,
approvals decided by the customer, an operator or the clock (on a node that
survives another's death), step data and codes, cancellation rules."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import msgspec

from protocol.catalogue import Cancellation, CategoryDefinition, Step, StepField
from protocol.messages import Ack, Error, JobCancelled, JobUpdated
from server import categories
from tests.support import UNIT, Admin, Customer, ServerProcess, WorkerClient

GROOMING = Path(__file__).parent.parent / "data" / "pet-grooming.toml"
PHOTO = "https://photos.example/p/1.jpg"


def category(steps: list[Step] | None = None, **changes: Any) -> CategoryDefinition:
    """The README's pet-grooming category under a key of its own."""
    d = categories.load(GROOMING)
    changes.setdefault("key", f"wf-{uuid.uuid4().hex[:8]}")
    if steps is not None:
        changes["steps"] = steps
        changes.setdefault("cancellation", Cancellation())
    return msgspec.structs.replace(d, **changes)


async def assigned(
    server: ServerProcess, admin: Admin, customer: Customer, city: str,
    d: CategoryDefinition, attrs: dict[str, Any], wid: str = "g-1",
) -> tuple[WorkerClient, str, Ack]:  # fmt: skip
    """A worker of the category holding a job of it: (worker, order id, accept ack)."""
    assert (await admin.put_category(d)).status_code in (200, 201)
    worker = await WorkerClient.connect(server.ws_url, wid, city, skills=tuple(d.skills))
    r = await customer.create(city, skill=None, category=d.key, attributes=attrs)
    assert r.status_code == 201, r.text
    offer = await worker.offer()
    ack = await worker.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(ack, Ack) and ack.job is not None, ack
    return worker, r.json()["id"], ack


async def step(worker: WorkerClient, oid: str, name: str, **data: Any) -> Any:
    frame: dict[str, Any] = {"type": "progress", "order_id": oid, "step": name}
    if data:
        frame["data"] = data
    return await worker.request(frame)


async def test_a_heavy_dog_waits_for_the_customer_to_approve(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """arrived, the approval (only the customer's), groomed, photo_sent with its
    photo, completed; every step recorded with who did it."""
    worker, oid, ack = await assigned(server, admin, customer, city, category(),
                                      {"breed": "retriever", "weight_kg": 45})  # fmt: skip
    assert ack.job is not None and ack.job.step == "arrived"
    reply = await step(worker, oid, "arrived")
    assert isinstance(reply, Ack) and reply.job is not None
    assert reply.job.step == "approve_large_dog" and reply.job.state == "arrived"
    refused = await step(worker, oid, "groomed")
    assert isinstance(refused, Error) and refused.code == "illegal_step"
    refused = await step(worker, oid, "approve_large_dog")
    assert isinstance(refused, Error) and refused.code == "not_your_step"
    r = await customer.http.post(f"/v1/orders/{oid}/steps/approve_large_dog", json={})
    assert (r.status_code, r.json()["code"]) == (400, "missing_field")
    r = await customer.http.post(
        f"/v1/orders/{oid}/steps/approve_large_dog", json={"decision": "approve"}
    )
    assert r.status_code == 200 and r.json()["step"] == "groomed"
    told = await worker.expect(JobUpdated)
    assert (told.event, told.reason, told.job.step) == ("approve_large_dog", "approved", "groomed")
    assert isinstance(await step(worker, oid, "groomed"), Ack)
    missing = await step(worker, oid, "photo_sent")
    assert isinstance(missing, Error) and missing.code == "invalid_step_data"
    assert [e.field for e in missing.errors or []] == ["data.photo_url"]
    bad = await step(worker, oid, "photo_sent", photo_url="ftp://x")
    assert isinstance(bad, Error) and bad.errors and bad.errors[0].code == "invalid_field"
    assert isinstance(await step(worker, oid, "photo_sent", photo_url=PHOTO), Ack)
    done = await step(worker, oid, "completed")
    assert isinstance(done, Ack) and done.state == "available" and done.job is None
    view = await customer.order(oid)
    assert view["state"] == "completed" and view["step"] is None
    trail = [(e["type"], e["state"], e.get("by"), e.get("reason")) for e in view["events"]][3:]
    assert trail == [
        ("assigned", "assigned", None, None),
        ("arrived", "arrived", "worker", None),
        ("approve_large_dog", "arrived", "customer", "approved"),
        ("groomed", "started", "worker", None),
        ("photo_sent", "started", "worker", None),
        ("completed", "completed", "worker", None),
    ]
    assert view["events"][3]["next_step"] == "arrived"
    assert view["events"][-2]["data"] == {"photo_url": PHOTO}
    await worker.close()


async def test_a_light_dog_skips_the_approval(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The approval's condition is false: after arrived comes groomed."""
    worker, oid, _ = await assigned(server, admin, customer, city, category(),
                                    {"breed": "poodle", "weight_kg": 8})  # fmt: skip
    reply = await step(worker, oid, "arrived")
    assert isinstance(reply, Ack) and reply.job is not None and reply.job.step == "groomed"
    await worker.close()


async def test_a_rejected_approval_cancels_and_frees_the_worker(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The customer says no: the order is cancelled, the worker told and free."""
    worker, oid, _ = await assigned(server, admin, customer, city, category(),
                                    {"breed": "shepherd", "weight_kg": 50})  # fmt: skip
    await step(worker, oid, "arrived")
    r = await customer.http.post(
        f"/v1/orders/{oid}/steps/approve_large_dog", json={"decision": "reject"}
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    told = await worker.expect(JobCancelled)
    assert (told.order_id, told.reason) == (oid, "customer")
    last = r.json()["events"][-2:]
    assert [(e["type"], e.get("reason")) for e in last] == [
        ("approve_large_dog", "rejected"), ("cancelled", "rejected"),
    ]  # fmt: skip
    again = await customer.http.post(
        f"/v1/orders/{oid}/steps/approve_large_dog", json={"decision": "approve"}
    )
    assert (again.status_code, again.json()["code"]) == (409, "illegal_step")
    ping = await worker.request({"type": "ping"})
    assert isinstance(ping, Ack)
    status = await worker.request({"type": "status", "status": "paused"})
    assert isinstance(status, Ack)  # no job left to hold it
    await worker.close()


async def test_a_racing_approve_and_reject_resolve_to_one(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Two decisions at once: exactly one is taken, the other is illegal_step."""
    worker, oid, _ = await assigned(server, admin, customer, city, category(),
                                    {"breed": "shepherd", "weight_kg": 60})  # fmt: skip
    await step(worker, oid, "arrived")
    url = f"/v1/orders/{oid}/steps/approve_large_dog"
    answers = await asyncio.gather(
        customer.http.post(url, json={"decision": "approve"}),
        customer.http.post(url, json={"decision": "reject"}),
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    await worker.close()


async def test_the_handover_code_is_checked(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """A delivery is delivered against the customer's code, not another."""
    d = category(skills=["courier-x"], steps=[
        Step(name="picked_up", state="started"),
        Step(name="delivered", requires=[StepField(name="code", type="code")]),
    ])  # fmt: skip
    worker, oid, ack = await assigned(server, admin, customer, city, d,
                                      {"breed": "other", "weight_kg": 1})  # fmt: skip
    assert ack.job is not None and ack.job.state == "assigned"
    moved = await step(worker, oid, "picked_up")
    assert isinstance(moved, Ack) and moved.job is not None and moved.job.state == "started"
    code = (await customer.order(oid))["code"]
    wrong = "0000" if code != "0000" else "1111"
    refused = await step(worker, oid, "delivered", code=wrong)
    assert isinstance(refused, Error) and refused.errors and refused.errors[0].code == "wrong_code"
    assert isinstance(await step(worker, oid, "delivered", code=code), Ack)
    assert (await customer.order(oid))["state"] == "completed"
    await worker.close()


async def test_a_steps_whole_number_reads_alike_live_and_in_the_history(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """``{"quote_cents": 12000}`` is 12000 on the live socket and in GET, never 12000.0."""
    d = category(skills=["quoter-x"], steps=[
        Step(name="quoted", requires=[StepField(name="quote_cents", type="number")]),
        Step(name="done"),
    ])  # fmt: skip
    worker, oid, _ = await assigned(server, admin, customer, city, d,
                                    {"breed": "other", "weight_kg": 1})  # fmt: skip
    live = await customer.live(oid)
    assert json.loads(await live.ws.recv())["type"] == "snapshot"
    assert isinstance(await step(worker, oid, "quoted", quote_cents=12000), Ack)
    frame: dict[str, Any] = {}
    while frame.get("type") != "event":  # past any position of the worker
        frame = json.loads(await asyncio.wait_for(live.ws.recv(), 5 * UNIT))
    history = (await customer.order(oid))["events"]
    seen = [frame["event"]["data"], history[-1]["data"]]
    assert [repr(data) for data in seen] == ["{'quote_cents': 12000}"] * 2, seen
    await live.close()
    await worker.close()


async def test_cancelling_follows_the_category(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Free before free_until, the fee after it, refused after customer_until."""
    d = category(
        steps=[Step(name="a"), Step(name="b"), Step(name="c")],
        cancellation=Cancellation(free_until="a", fee=700, customer_until="b"),
    )
    worker, oid, _ = await assigned(server, admin, customer, city, d, {"breed": "other",
                                    "weight_kg": 3})  # fmt: skip
    r = await customer.http.post(f"/v1/orders/{oid}/cancel")
    assert r.status_code == 200 and r.json()["events"][-1]["fee"] is None
    await worker.expect(JobCancelled)
    await worker.close()
    worker, oid, _ = await assigned(server, admin, customer, city, d,
                                    {"breed": "other", "weight_kg": 3}, wid="g-2")  # fmt: skip
    await step(worker, oid, "a")
    r = await customer.http.post(f"/v1/orders/{oid}/cancel")
    assert r.status_code == 200 and r.json()["events"][-1]["fee"] == 700
    await worker.close()
    worker, oid, _ = await assigned(server, admin, customer, city, d,
                                    {"breed": "other", "weight_kg": 3}, wid="g-3")  # fmt: skip
    await step(worker, oid, "a")
    await step(worker, oid, "b")
    r = await customer.http.post(f"/v1/orders/{oid}/cancel")
    assert (r.status_code, r.json()["code"]) == (409, "not_cancellable")
    await worker.close()


async def test_an_operator_can_do_any_step_and_cancel_a_started_order(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The operator does the worker's step (recorded as theirs), then cancels the
    order once started, which a customer may not."""
    worker, oid, _ = await assigned(server, admin, customer, city, category(),
                                    {"breed": "poodle", "weight_kg": 5})  # fmt: skip
    r = await admin.http.post(f"/v1/admin/orders/{oid}/steps/arrived")
    assert r.status_code == 200 and r.json()["step"] == "groomed"
    arrived = r.json()["events"][-1]
    assert (arrived["by"], arrived["actor"], arrived["worker"]) == ("operator", "ops-1", "g-1")
    told = await worker.expect(JobUpdated)
    assert told.job.step == "groomed"
    await step(worker, oid, "groomed")
    r = await customer.http.post(f"/v1/orders/{oid}/cancel")
    assert (r.status_code, r.json()["code"]) == (409, "not_cancellable")
    r = await admin.http.post(f"/v1/admin/orders/{oid}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert (await worker.expect(JobCancelled)).reason == "operator"
    r = await customer.http.post(f"/v1/orders/{oid}/steps/arrived")
    assert r.status_code == 409
    await worker.close()


async def test_a_system_step_happens_on_its_own(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """A step the system does after its timeout: the worker is told."""
    d = category(steps=[
        Step(name="arrived", state="arrived"),
        Step(name="cooled_down", by="system", timeout_s=0.3 * UNIT),
        Step(name="completed"),
    ])  # fmt: skip
    worker, oid, _ = await assigned(server, admin, customer, city, d,
                                    {"breed": "poodle", "weight_kg": 5})  # fmt: skip
    await step(worker, oid, "arrived")
    told = await worker.expect(JobUpdated, timeout=3)
    assert (told.event, told.job.step) == ("cooled_down", "completed")
    ev = (await customer.order(oid))["events"][-1]
    assert (ev["type"], ev["by"], ev["actor"]) == ("cooled_down", "system", "system")
    await worker.close()


async def test_an_approval_times_out_on_a_surviving_node(
    redis_url: str, admin: Admin, customer: Customer, city: str
) -> None:
    """The node that took the order dies; another node's sweeper decides the
    approval when its time is up (here: approve), and the job goes on."""
    d = category(steps=[
        Step(name="arrived", state="arrived"),
        Step(name="ok", kind="approval", by="operator", timeout_s=1.0 * UNIT,
             on_timeout="approve"),
        Step(name="completed"),
    ])  # fmt: skip
    doomed, survivor = ServerProcess(redis_url).start(), ServerProcess(redis_url).start()
    try:
        near = Customer(doomed.url, customer.id)
        worker, oid, _ = await assigned(doomed, admin, near, city, d,
                                        {"breed": "poodle", "weight_kg": 5})  # fmt: skip
        reply = await step(worker, oid, "arrived")
        assert isinstance(reply, Ack) and reply.job is not None and reply.job.step == "ok"
        doomed.kill()
        await near.close()
        seen = Customer(survivor.url, customer.id)
        view = await seen.wait_state(oid, "arrived")
        for _ in range(int(60 * UNIT)):
            view = await seen.order(oid)
            if view["step"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert view["step"] == "completed", view
        ok = view["events"][-1]
        assert (ok["type"], ok["by"], ok["reason"]) == ("ok", "system", "approved")
        await seen.close()
    finally:
        doomed.stop()
        survivor.stop()


async def test_a_step_another_node_did_does_not_confuse_the_workers_node(
    server: ServerProcess, second: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The worker's node remembers the order as it last saw it; the customer approves
    through another node; the worker's next step still goes through (its node reads
    the order again), and a step out of turn is still refused."""
    worker, oid, _ = await assigned(server, admin, customer, city, category(),
                                    {"breed": "retriever", "weight_kg": 45})  # fmt: skip
    assert isinstance(await step(worker, oid, "arrived"), Ack)
    elsewhere = Customer(second.url, customer.id)
    r = await elsewhere.http.post(f"/v1/orders/{oid}/steps/approve_large_dog",
                                  json={"decision": "approve"})  # fmt: skip
    assert r.status_code == 200 and r.json()["step"] == "groomed", r.text
    early = await step(worker, oid, "photo_sent", photo_url=PHOTO)
    assert isinstance(early, Error) and early.code == "illegal_step"
    reply = await step(worker, oid, "groomed")
    assert isinstance(reply, Ack) and reply.job is not None and reply.job.step == "photo_sent"
    await elsewhere.close()
    await worker.close()
