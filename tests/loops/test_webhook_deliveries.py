"""Webhooks end to end: a node on a Redis of its own delivers the cities'
events to real receivers on 127.0.0.1 that check every signature with the
Standard Webhooks reference library; retries, a receiver that times out and
recovers, 410, dead letters, the delivery log, and the stream's consumer group."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.webhooks import Subscription
from server.core import webhook_rules
from server.loops.webhook_deliveries import Deliveries, new_secret
from server.store import keys
from server.store.cluster import open_link
from server.store.redis_store import Store
from server.store.webhooks import WebhookStore
from tests.support import (
    UNIT,
    Admin,
    Customer,
    Receiver,
    RedisProcess,
    ServerProcess,
    WorkerClient,
    redis_client,
    unique_city,
)

pytestmark = pytest.mark.slow

ENV = {
    "DISPATCH_WEBHOOK_RETRY_SCALE": "0.00005",  # the whole schedule in about 5 s
    "DISPATCH_WEBHOOK_TIMEOUT_S": str(0.3 * UNIT),
    "DISPATCH_WEBHOOK_POLL_MS": "20",
}


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redis = RedisProcess(Path(tmp_path_factory.mktemp("hooks")), appendonly=False)
    yield redis.start()
    redis.stop()


@pytest.fixture(scope="module")
def node(own_redis: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(own_redis, env=ENV).start()
    yield proc
    proc.stop()


@pytest.fixture
async def admin(node: ServerProcess) -> AsyncIterator[Admin]:
    a = Admin(node.url)
    yield a
    await a.close()


async def subscribe(admin: Admin, receiver: Receiver, **body: Any) -> dict[str, Any]:
    r = await admin.http.post("/v1/admin/webhooks", json={"url": receiver.url, **body})
    assert r.status_code == 201, r.text
    sub: dict[str, Any] = r.json()
    receiver.secret = sub["secret"]
    return sub


async def log_of(admin: Admin, sub: dict[str, Any]) -> list[dict[str, Any]]:
    r = await admin.http.get(f"/v1/admin/webhooks/{sub['id']}/deliveries")
    found: list[dict[str, Any]] = r.json()["deliveries"]
    return found


async def until(pred: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout * UNIT / 0.05)):
        if await pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("it did not happen in time")


async def handled(own_redis: str, city: str) -> None:
    """Wait until the node has read and acknowledged every entry now in ``city``'s
    stream: each subscription that wanted one has had its attempt."""
    client = redis_client(own_redis)
    stream = keys.stream(city)
    newest: Any = await client.xrevrange(stream, count=1)
    last = newest[0][0]

    def position(entry_id: Any) -> tuple[int, ...]:  # stream ids order as (ms, seq)
        return tuple(int(part) for part in bytes(entry_id).split(b"-"))

    async def acked() -> bool:
        group = (await client.xinfo_groups(stream))[0]
        read_past = position(group["last-delivered-id"]) >= position(last)
        return bool(read_past and group["pending"] == 0)

    await until(acked)
    await client.aclose()


def types(got: list[dict[str, Any]]) -> list[str]:
    return [g["type"] for g in got]


def test_signatures_follow_the_spec() -> None:
    """Our signature is the reference library's, for the same id, time and body."""
    from standardwebhooks import Webhook

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"type":"order.created"}'
    at = datetime.fromtimestamp(1732700000, UTC)
    theirs = Webhook(secret).sign("msg_1", at, body.decode())
    assert webhook_rules.signature_header(secret, "msg_1", 1732700000, body) == theirs


def test_the_retry_schedule_ends() -> None:
    """Seven waits after the first attempt, scaled; then none."""
    waits = [webhook_rules.next_delay_ms(n, 1.0) for n in range(1, 10)]
    assert waits[:7] == [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]
    assert waits[7:] == [None, None]
    assert webhook_rules.matches(["order.*"], ["ride"], "order.assigned", "ride")
    assert not webhook_rules.matches(["order.*"], ["ride"], "order.assigned", "beauty")
    assert not webhook_rules.matches(["order.*"], ["ride"], "worker.status", None)
    assert webhook_rules.matches(["*"], [], "worker.status", None)


async def test_every_event_of_an_order_arrives_signed(node: ServerProcess, admin: Admin) -> None:
    """A subscription to one category's order events gets each, once, verified
    (in no promised order); a subscription to worker events gets the worker's."""
    city = unique_city()
    orders, workers = Receiver(), Receiver()
    await orders.start()
    await workers.start()
    sub = await subscribe(admin, orders, events=["order.*"], categories=["beauty"])
    await subscribe(admin, workers, events=["worker.*"])
    customer = Customer(node.url)
    worker = await WorkerClient.connect(node.ws_url, "b-1", city, skills=("beauty",))
    r = await customer.create(city, skill=None, category="beauty",
                              attributes={"treatment": "manicure"})  # fmt: skip
    oid = r.json()["id"]
    await customer.create(city, skill=None, category="ride")  # not this subscription's
    offer = await worker.offer()
    await worker.request({"type": "accept", "offer_id": offer.offer_id})
    for step in ("arrived", "started", "completed"):
        await worker.request({"type": "progress", "order_id": oid, "step": step})
    got = await orders.wait_for(lambda g: len(g) >= 7)
    got = sorted(got, key=lambda g: [int(x) for x in g["data"]["event"]["id"].split("-")])
    assert types(got) == ["order.created", "order.dispatching", "order.offered",
                          "order.assigned", "order.arrived", "order.started",
                          "order.completed"]  # fmt: skip
    assert {g["data"]["order_id"] for g in got} == {oid}
    assert got[3]["data"]["category"] == "beauty" and got[3]["data"]["event"]["worker"] == "b-1"
    assert len(set(orders.ids)) == len(orders.ids) and orders.bad_signatures == 0
    seen = await workers.wait_for(lambda g: "worker.status" in types(g))
    connected = next(g for g in seen if g["type"] == "worker.connected")  # in no promised order
    assert connected["data"]["worker_id"] == "b-1"
    status = next(g for g in seen if g["type"] == "worker.status")
    assert status["data"]["state"] == "available"
    log = await log_of(admin, sub)
    assert {d["status"] for d in log} == {"delivered"} and len(log) == 7
    await worker.close()
    await customer.close()
    await orders.stop()
    await workers.stop()


async def test_a_failing_receiver_gets_it_again_and_one_that_times_out_recovers(
    node: ServerProcess, admin: Admin
) -> None:
    """500, 500, then 200: delivered on the third attempt; a slow answer is a
    timeout, retried; the log shows each attempt."""
    city = unique_city()
    receiver = Receiver(slow_s=1.0 * UNIT)
    await receiver.start()
    sub = await subscribe(admin, receiver, events=["order.created"])
    receiver.answers = [500, 500, "slow"]
    customer = Customer(node.url)
    oid = (await customer.create(city, 10.0, 10.0)).json()["id"]
    got = await receiver.wait_for(lambda g: len(g) >= 1, timeout=10)
    assert got[0]["data"]["order_id"] == oid
    log = await log_of(admin, sub)
    assert [d["status"] for d in log][::-1] == ["retrying", "retrying", "retrying", "delivered"]
    assert log[0]["attempts"] == 4 and log[1]["error"].startswith("no answer within")
    assert log[-1]["response_status"] == 500 and log[-1]["next_attempt_at"] is not None
    await customer.close()
    await receiver.stop()


async def test_410_disables_and_an_endless_failure_is_a_dead_letter(
    own_redis: str, node: ServerProcess, admin: Admin
) -> None:
    """410 Gone turns the subscription off; a receiver that always fails gets
    every attempt of the schedule, then the message is a dead letter."""
    city = unique_city()
    gone, broken = Receiver(), Receiver()
    await gone.start()
    await broken.start()
    gone_sub = await subscribe(admin, gone, events=["order.created"])
    broken_sub = await subscribe(admin, broken, events=["order.created"])
    gone.answers = [410]
    broken.answers = [503] * 8
    customer = Customer(node.url)
    await customer.create(city, 10.0, 10.0)

    async def disabled() -> bool:
        r = await admin.http.get(f"/v1/admin/webhooks/{gone_sub['id']}")
        return r.json()["enabled"] is False

    await until(disabled)
    assert (await admin.http.get(f"/v1/admin/webhooks/{gone_sub['id']}")).json()[
        "disabled_reason"
    ] == "the receiver answered 410 Gone"

    async def buried() -> bool:
        r = await admin.http.get(f"/v1/admin/webhooks/{broken_sub['id']}/dead")
        return bool(r.json()["dead"])

    await until(buried, timeout=20)
    dead = (await admin.http.get(f"/v1/admin/webhooks/{broken_sub['id']}/dead")).json()["dead"]
    assert dead[0]["attempts"] == 8 and dead[0]["type"] == "order.created"
    assert '"order.created"' in dead[0]["body"]
    await customer.create(city, 10.0, 10.0)  # the disabled one gets no more
    await handled(own_redis, city)
    assert gone.got == []
    r = await admin.http.post(f"/v1/admin/webhooks/{gone_sub['id']}/enable")
    assert r.json()["enabled"] is True
    await customer.create(city, 10.0, 10.0)
    await gone.wait_for(lambda g: len(g) == 1)
    for sub in (gone_sub, broken_sub):
        assert (await admin.http.delete(f"/v1/admin/webhooks/{sub['id']}")).status_code == 204
    r = await admin.http.get(f"/v1/admin/webhooks/{gone_sub['id']}")
    assert (r.status_code, r.json()["code"]) == (404, "subscription_not_found")
    await customer.close()
    await gone.stop()
    await broken.stop()


async def test_a_bad_subscription_is_refused(admin: Admin) -> None:
    """A URL that is not http(s), an unknown event pattern, a malformed secret."""
    for body in ({"url": "ftp://x"}, {"url": "http://x", "events": ["orders"]},
                 {"url": "http://x", "secret": "nope"}):  # fmt: skip
        r = await admin.http.post("/v1/admin/webhooks", json=body)
        assert r.status_code == 400 and r.json()["code"] == "invalid_field", r.text


async def test_a_url_without_a_proper_host_is_refused_naming_it(admin: Admin) -> None:
    """A control character, a space, no host: 400 ``invalid_field`` for ``url``."""
    for url in ("http://a\u0006b/", "http://a b/", "http:///x", "https://:80/", "http://x/\u007f"):
        r = await admin.http.post("/v1/admin/webhooks", json={"url": url})
        assert r.status_code == 400 and r.json()["code"] == "invalid_field", (url, r.text)
        assert [e["field"] for e in r.json()["errors"]] == ["url"], r.text


async def test_one_undeliverable_subscription_resends_nothing_to_others(
    own_redis: str, node: ServerProcess, admin: Admin
) -> None:
    """A URL the HTTP client refuses (stored before URLs were checked) fails its
    own subscription, on its retry schedule; every entry is acknowledged, and a
    healthy receiver gets each event once."""
    store = Store(open_link(own_redis, 2.0, 2.0))
    hooks = WebhookStore(store, 60_000)
    bad = Subscription(id=f"sub_bad{uuid.uuid4().hex[:8]}", url="http://a\x06b/",
                       events=["order.*"], categories=[], secret=new_secret(), enabled=True,
                       created_at=int(time.time() * 1000))  # fmt: skip
    await hooks.save(bad)
    receiver = await Receiver().start()
    await subscribe(admin, receiver, events=["order.*"])
    city = unique_city()
    customer = Customer(node.url)
    await customer.create(city, 10.0, 10.0)
    client = redis_client(own_redis)

    async def failed_alone() -> bool:
        groups = await client.xinfo_groups(keys.stream(city))
        tried = await log_of(admin, {"id": bad.id})
        return bool(groups and groups[0]["pending"] == 0 and receiver.ids
                    and any("InvalidURL" in (d["error"] or "") for d in tried))  # fmt: skip

    await until(failed_alone)
    assert len(receiver.ids) == len(set(receiver.ids)), receiver.ids
    await admin.http.delete(f"/v1/admin/webhooks/{bad.id}")
    await client.aclose()
    await store.link.aclose()
    await customer.close()
    await receiver.stop()


async def test_a_dead_consumers_entries_are_claimed(own_redis: str) -> None:
    """Entries a consumer read and never acknowledged go to another that claims them.
    (A city no node serves, so that no running node's consumer reads them first.)"""
    city = f"unserved-{uuid.uuid4().hex[:8]}"
    store = Store(open_link(own_redis, 2.0, 2.0))
    hooks = WebhookStore(store, 60_000)
    await hooks.join([city])
    oid = f"{city}.0000000001"
    for etype in ("created", "dispatching"):
        event = {"id": "1-0", "type": etype, "at": 1, "state": etype}
        await store.call("XADD", keys.stream(city), "*", "k", "order",
                         "e", json.dumps(event), "o", oid, "c", "")  # fmt: skip
    taken = await hooks.read([city], "dead-node", 100)
    assert len(taken) == 2 and {e.order for e in taken} == {oid}
    assert await hooks.claim_stale(city, "heir", 60_000) == []  # not idle long enough
    claimed = await hooks.claim_stale(city, "heir", 0)
    assert [e.id for e in claimed] == [e.id for e in taken]
    for entry in claimed:
        await hooks.ack(city, entry.id)
    assert await hooks.claim_stale(city, "heir-2", 0) == []
    await store.call("DEL", keys.stream(city))
    await store.link.aclose()


async def test_with_no_subscription_the_events_are_skipped_unread(
    own_redis: str, node: ServerProcess, admin: Admin
) -> None:
    """No subscription enabled: the group moves past the events without reading them
    (nothing pending); a subscription made then gets the events after it."""
    listed = (await admin.http.get("/v1/admin/webhooks")).json()["subscriptions"]
    for sub in listed:
        await admin.http.delete(f"/v1/admin/webhooks/{sub['id']}")
    city = unique_city()
    customer = Customer(node.url)
    client = redis_client(own_redis)
    stream = keys.stream(city)

    async def calls(command: str) -> int:
        stats = await client.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    looks = await calls("xrevrange")

    async def idle() -> bool:  # only a loop that wants no events looks where the streams end
        return await calls("xrevrange") > looks

    await until(idle)
    before = await calls("xreadgroup")
    await customer.create(city, 10.0, 10.0)

    async def skipped() -> bool:
        groups = await client.xinfo_groups(stream)
        last = await client.xrevrange(stream, count=1)
        return bool(groups and last and groups[0]["last-delivered-id"] == last[0][0]
                    and groups[0]["pending"] == 0)  # fmt: skip

    await until(skipped)
    assert await calls("xreadgroup") == before, "the events were read though nobody wanted them"
    receiver = await Receiver().start()
    await subscribe(admin, receiver, events=["order.created"])
    # no wait for the loop to see it: an idle loop notes where the streams end before
    # it looks for subscriptions, so it never skips an event that came after one
    oid = (await customer.create(city, 10.0, 10.0)).json()["id"]
    got = await receiver.wait_for(lambda g: len(g) >= 1)
    assert [g["data"]["order_id"] for g in got] == [oid]
    await client.aclose()
    await customer.close()
    await receiver.stop()


async def test_a_subscription_made_just_before_an_event_gets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription saved while a round runs, before an event that round reads,
    gets that event (the subscriptions are looked at after the read, not before)."""
    redis = RedisProcess(tmp_path, appendonly=False)
    store = Store(open_link(redis.start(), 2.0, 2.0))
    city = f"unserved-{uuid.uuid4().hex[:8]}"
    deliveries = Deliveries(
        store, "n-1", [city], timeout_s=UNIT, retry_scale=1.0, concurrency=4, poll_ms=20,
        retention_ms=60_000, lease_ms=1_000,
    )  # fmt: skip
    hooks = deliveries.hooks
    await hooks.join([city])
    early, late = await Receiver().start(), await Receiver().start()

    async def save(receiver: Receiver) -> None:
        receiver.secret = new_secret()
        await hooks.save(Subscription(uuid.uuid4().hex, receiver.url, ["*"], [],
                                      receiver.secret, True, store.now_ms()))  # fmt: skip

    await save(early)  # enabled: the rounds read the stream
    real_read = hooks.read

    async def read_after_a_new_subscription_and_event(*args: Any) -> list[Any]:
        await save(late)
        event = {"id": "1-0", "type": "created", "at": store.now_ms() + 1, "state": "created"}
        await store.call("XADD", keys.stream(city), "*", "k", "order",
                         "e", json.dumps(event), "o", f"{city}.0000000001", "c", "")  # fmt: skip
        return await real_read(*args)

    async with httpx.AsyncClient(timeout=UNIT) as deliveries.http:
        await deliveries._round(1)  # loads the first subscription
        monkeypatch.setattr(hooks, "read", read_after_a_new_subscription_and_event)
        await deliveries._round(1)
        await deliveries.drain()
    assert len(early.got) == len(late.got) == 1
    await early.stop()
    await late.stop()
    await store.link.aclose()
    redis.stop()
