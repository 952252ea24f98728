"""Operators stepping in, against a running server: reassign an order (from
its offer's holders or its worker), move its deadline, pause and block
workers (for everyone or one customer); each recorded with the operator."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protocol import codec
from protocol.messages import (
    Ack,
    Error,
    Figures,
    Hello,
    Hold,
    JobCancelled,
    OfferMade,
    OfferWithdrawn,
    Welcome,
)
from tests.support import (
    UNIT,
    Admin,
    Customer,
    ServerProcess,
    WorkerClient,
    note,
    redis_client,
    worker_token,
)

NEAR, FAR = 13.4011, 13.43  # the pickup is at 13.401


async def _worker(server: ServerProcess, wid: str, city: str, lng: float = NEAR) -> WorkerClient:
    return await WorkerClient.connect(server.ws_url, wid, city, lng=lng)


def _events(view: dict[str, Any], etype: str) -> list[dict[str, Any]]:
    return [e for e in view["events"] if e["type"] == etype]


async def test_reassign_takes_the_job_from_its_worker_and_dispatches_it_to_another(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The worker is told its job is cancelled (operator) and is free; the next
    worker gets the order, the first never again; the workflow starts over."""
    a = await _worker(server, "a", city)
    oid = (await customer.create(city)).json()["id"]
    offer = await a.offer()
    assert isinstance(await a.request({"type": "accept", "offer_id": offer.offer_id}), Ack)
    await a.request({"type": "progress", "order_id": oid, "step": "arrived"})
    b = await _worker(server, "b", city, FAR)
    r = await admin.http.post(f"/v1/admin/orders/{oid}/reassign", json={"reason": "flat tyre"})
    assert r.status_code == 200, r.text
    gone = await a.expect(JobCancelled)
    assert gone.order_id == oid and gone.reason == "operator"
    second = await b.offer()
    assert second.order_id == oid
    assert not [m for m in await a.silent(0.3) if isinstance(m, OfferMade)]
    ack = await b.request({"type": "accept", "offer_id": second.offer_id})
    assert isinstance(ack, Ack) and ack.job is not None and ack.job.step == "arrived"
    view = await customer.wait_state(oid, "assigned")
    (event,) = _events(view, "reassigned")
    assert event["state"] == "dispatching" and event["workers"] == ["a"]
    assert (event["by"], event["actor"], event["reason"]) == ("operator", "ops-1", "flat tyre")
    assert view["worker"] == "b"
    standing = (await admin.http.get(f"/v1/admin/workers/{city}/a")).json()
    assert standing["state"] == "available" and standing["jobs"] == []
    await a.close()
    await b.close()


async def test_reassign_withdraws_an_open_offer_from_its_holder(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """An offered order is withdrawn (``cancelled``) and offered to someone else;
    the holder's late accept is refused."""
    a = await _worker(server, "a", city)
    oid = (await customer.create(city)).json()["id"]
    offer = await a.offer()
    b = await _worker(server, "b", city, FAR)
    assert (await admin.http.post(f"/v1/admin/orders/{oid}/reassign")).status_code == 200
    withdrawn = await a.expect(OfferWithdrawn)
    assert withdrawn.offer_id == offer.offer_id and withdrawn.reason == "cancelled"
    late = await a.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(late, Error) and late.code == "offer_expired"
    assert (await b.offer()).order_id == oid
    await a.close()
    await b.close()


async def test_reassign_is_refused_while_searching_and_for_unknown_orders(
    admin: Admin, customer: Customer, city: str
) -> None:
    """Nobody has the order yet: 409 ``not_reassignable``; no such order: 404."""
    oid = (await customer.create(city)).json()["id"]
    r = await admin.http.post(f"/v1/admin/orders/{oid}/reassign")
    assert r.status_code == 409 and r.json()["code"] == "not_reassignable"
    r = await admin.http.post(f"/v1/admin/orders/{city}.00000000000/reassign")
    assert r.status_code == 404 and r.json()["code"] == "order_not_found"
    r = await admin.http.post(f"/v1/admin/orders/{oid}/reassign", json={"why": "x"})
    assert r.status_code == 400


async def test_extend_moves_the_dispatch_deadline(
    admin: Admin, customer: Customer, city: str
) -> None:
    """An order nobody takes gives up at its deadline, unless an operator moved it."""
    kept = (await customer.create(city)).json()
    r = await admin.http.post(f"/v1/admin/orders/{kept['id']}/extend", json={"by_s": 60})
    assert r.status_code == 200, r.text
    (event,) = _events(r.json(), "extended")
    assert event["due_at"] == kept["created_at"] + 60_000 + int(3000 * UNIT)
    assert (event["by"], event["actor"], event["state"]) == ("operator", "ops-1", "dispatching")
    dropped = (await customer.create(city)).json()["id"]
    await customer.wait_state(dropped, "unassigned", timeout=6.0)
    assert (await customer.order(kept["id"]))["state"] == "dispatching"
    r = await admin.http.post(f"/v1/admin/orders/{dropped}/extend", json={"by_s": 60})
    assert r.status_code == 409 and r.json()["code"] == "not_extendable"
    for bad in ({"by_s": 0}, {"by_s": 86_401}, {}):
        r = await admin.http.post(f"/v1/admin/orders/{kept['id']}/extend", json=bad)
        assert r.status_code == 400, bad


async def test_extend_moves_a_pending_steps_timer_not_a_workers_step(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """A worker's own step has no timer to move: 409 ``not_extendable``."""
    a = await _worker(server, "a", city)
    oid = (await customer.create(city)).json()["id"]
    await a.request({"type": "accept", "offer_id": (await a.offer()).offer_id})
    r = await admin.http.post(f"/v1/admin/orders/{oid}/extend", json={"by_s": 5})
    assert r.status_code == 409 and r.json()["code"] == "not_extendable"
    await a.close()


async def test_pause_keeps_offers_away_until_it_ends(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """A paused worker is told until when, gets no offer meanwhile, and one after."""
    a = await _worker(server, "a", city)
    r = await admin.http.post(f"/v1/admin/workers/{city}/a/pause",
                              json={"for_s": 1, "reason": "break"})  # fmt: skip
    assert r.status_code == 200, r.text
    until = r.json()["paused_until"]
    hold = await a.expect(Hold)
    assert (hold.hold, hold.until, hold.reason) == ("paused", until, "break")
    again = await WorkerClient.connect(server.ws_url, "a", city)  # replaces the first socket
    assert again.welcome.paused_until == until
    started = time.time() * 1000
    oid = (await customer.create(city)).json()["id"]
    offer = await again.offer(timeout=3.0)
    assert offer.order_id == oid and time.time() * 1000 >= until - 50 > started - 1000
    await again.close()
    await a.close()


async def test_resume_lifts_a_pause_and_nothing_is_not_held(
    server: ServerProcess, admin: Admin, city: str
) -> None:
    """``resume`` ends a pause early (``hold`` ``resumed``); with no pause, 409."""
    a = await _worker(server, "a", city)
    base = f"/v1/admin/workers/{city}/a"
    assert (await admin.http.post(f"{base}/pause", json={"for_s": 600})).status_code == 200
    assert (await admin.http.get(base)).json()["paused_until"] is not None
    r = await admin.http.post(f"{base}/resume")
    assert r.status_code == 200 and r.json()["paused_until"] is None
    holds = [m for m in await a.silent(0.3) if isinstance(m, Hold)]
    assert [h.hold for h in holds] == ["paused", "resumed"]
    r = await admin.http.post(f"{base}/resume")
    assert r.status_code == 409 and r.json()["code"] == "not_held"
    for bad in ({"for_s": 0}, {"for_s": 7 * 86_400 + 1}):
        assert (await admin.http.post(f"{base}/pause", json=bad)).status_code == 400
    r = await admin.http.get("/v1/admin/workers/nowhere-city/a")
    assert r.status_code == 400 and r.json()["code"] == "unknown_city"
    r = await admin.http.get(f"/v1/admin/workers/{city}/bad%20id")
    assert r.status_code == 400 and r.json()["code"] == "invalid_field"
    await a.close()


async def _hello(server: ServerProcess, wid: str, city: str) -> tuple[Any, int | None]:
    """A fresh socket's answer to ``hello``, and its close code (None if open)."""
    token = worker_token(wid, city)
    async with connect(
        f"{server.ws_url}/v1/worker", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await ws.send(codec.encode(Hello(versions=[1])).decode())
        answer = note(codec.server_decoder.decode(await asyncio.wait_for(ws.recv(), 5 * UNIT)))
        try:
            await asyncio.wait_for(ws.recv(), 1.0 * UNIT)
        except ConnectionClosed as closed:
            return answer, closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return answer, None
    return answer, None


async def test_block_closes_the_socket_and_refuses_hello_until_unblocked(
    server: ServerProcess, admin: Admin, city: str
) -> None:
    """``hold`` ``blocked``, close 4403; ``hello`` gets ``worker_blocked``; unblock lets it in."""
    a = await _worker(server, "a", city)
    base = f"/v1/admin/workers/{city}/a"
    r = await admin.http.post(f"{base}/block", json={"reason": "fraud review"})
    assert r.status_code == 200 and r.json()["blocked"] is True
    hold = await a.expect(Hold)
    assert (hold.hold, hold.reason) == ("blocked", "fraud review")
    try:
        await asyncio.wait_for(a.ws.recv(), 3 * UNIT)
        raise AssertionError("the socket stayed open")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 4403
    answer, code = await _hello(server, "a", city)
    assert isinstance(answer, Error) and answer.code == "worker_blocked" and code == 4403
    assert (await admin.http.post(f"{base}/unblock")).status_code == 200
    answer, code = await _hello(server, "a", city)
    assert isinstance(answer, Welcome) and code is None
    r = await admin.http.post(f"{base}/unblock")
    assert r.status_code == 409 and r.json()["code"] == "not_held"


async def test_block_for_one_customer_sends_their_orders_to_someone_else(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The nearest worker, blocked for one customer, gets everyone else's orders only."""
    a = await _worker(server, "a", city)
    b = await _worker(server, "b", city, FAR)
    base = f"/v1/admin/workers/{city}/a"
    r = await admin.http.post(f"{base}/block", json={"customer": customer.id})
    assert r.status_code == 200 and r.json()["blocked_for"] == [customer.id]
    assert r.json()["blocked"] is False
    mine = (await customer.create(city)).json()["id"]
    assert (await b.offer()).order_id == mine
    assert not [m for m in await a.silent(0.3) if isinstance(m, OfferMade | Hold)]
    other = Customer(server.url)
    theirs = (await other.create(city)).json()["id"]
    assert (await a.offer()).order_id == theirs
    r = await admin.http.post(f"{base}/unblock", json={"customer": customer.id})
    assert r.status_code == 200 and r.json()["blocked_for"] == []
    await other.close()
    await a.close()
    await b.close()


async def test_every_override_of_a_worker_is_an_event_with_its_operator(
    redis_url: str, server: ServerProcess, city: str
) -> None:
    """Pause, resume, block and unblock land on the city's stream with ``by`` and ``actor``."""
    ops = Admin(server.url, "ops-anna")
    base = f"/v1/admin/workers/{city}/w9"
    await ops.http.post(f"{base}/pause", json={"for_s": 60, "reason": "late"})
    await ops.http.post(f"{base}/resume")
    await ops.http.post(f"{base}/block", json={"customer": "c-7"})
    await ops.http.post(f"{base}/unblock", json={"customer": "c-7"})
    events = await _worker_events(redis_url, city)
    assert [e["type"] for e in events] == ["paused", "resumed", "blocked", "unblocked"]
    assert {(e["by"], e["actor"], e["worker"]) for e in events} == {("operator", "ops-anna", "w9")}
    assert events[0]["reason"] == "late" and events[0]["until"] > 0
    assert events[2]["customer"] == events[3]["customer"] == "c-7"
    await ops.close()


async def test_a_worker_hands_a_job_back_before_its_point_of_no_return(
    server: ServerProcess, admin: Admin, customer: Customer, city: str, redis_url: str
) -> None:
    """cancel_job after arrived: acked, the worker is free and never offered the order
    again, another worker gets it, the customer sees who handed it back and why.
    Once the work started it is refused; a job the worker does not hold too. The
    hand-back counts against the worker until an operator waives it, once."""
    a = await _worker(server, "a", city)
    oid = (await customer.create(city)).json()["id"]
    await a.request({"type": "accept", "offer_id": (await a.offer()).offer_id})
    await a.request({"type": "progress", "order_id": oid, "step": "arrived"})
    b = await _worker(server, "b", city, FAR)
    ack = await a.request({"type": "cancel_job", "order_id": oid, "reason": "flat tyre"})
    assert isinstance(ack, Ack) and ack.state == "available", ack
    second = await b.offer()
    assert second.order_id == oid
    assert not [m for m in await a.silent(0.3) if isinstance(m, OfferMade | JobCancelled)]
    (event,) = _events(await customer.order(oid), "reassigned")
    assert (event["by"], event["actor"], event["workers"], event["reason"]) == (
        "worker", "a", ["a"], "flat tyre")  # fmt: skip
    await b.request({"type": "accept", "offer_id": second.offer_id})
    for step in ("arrived", "started"):
        await b.request({"type": "progress", "order_id": oid, "step": step})
    late = await b.request({"type": "cancel_job", "order_id": oid})
    assert isinstance(late, Error) and late.code == "not_cancellable"
    foreign = await a.request({"type": "cancel_job", "order_id": oid})
    assert isinstance(foreign, Error) and foreign.code == "job_not_found"
    _, month = (await admin.http.get(f"/v1/admin/workers/{city}/a")).json()["performance"]
    assert (month["accepted"], month["cancelled"], month["cancellation"]) == (1, 1, None)
    waive = {"order_id": oid, "reason": "wrong address"}
    r = await admin.http.post(f"/v1/admin/workers/{city}/b/waive", json=waive)
    assert (r.status_code, r.json()["code"]) == (409, "not_waivable")  # b handed nothing back
    r = await admin.http.post(f"/v1/admin/workers/{city}/a/waive", json=waive)
    assert r.status_code == 200, r.text
    (_, month) = r.json()["performance"]
    assert (month["accepted"], month["cancelled"]) == (1, 0)
    (event,) = [e for e in await _worker_events(redis_url, city) if e["type"] == "waived"]
    assert (event["worker"], event["order_id"], event["reason"]) == ("a", oid, "wrong address")
    r = await admin.http.post(f"/v1/admin/workers/{city}/a/waive", json=waive)
    assert (r.status_code, r.json()["code"]) == (409, "not_waivable")  # waived already
    await a.close()
    await b.close()


async def _worker_events(redis_url: str, city: str) -> list[dict[str, Any]]:
    """The worker events on the city's stream, oldest first."""
    client = redis_client(redis_url)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(f"d:{{{city}}}:events")  # type: ignore[assignment]
    await client.aclose()
    return [msgspec.json.decode(f[b"e"]) for _, f in entries if f[b"k"] == b"worker"]


async def _completed(server: ServerProcess, customer: Customer, city: str, wid: str) -> str:
    w = await _worker(server, wid, city)
    oid: str = (await customer.create(city)).json()["id"]
    await w.request({"type": "accept", "offer_id": (await w.offer()).offer_id})
    for step in ("arrived", "started", "completed"):
        await w.request({"type": "progress", "order_id": oid, "step": step})
    await w.close()
    return oid


async def test_a_customer_rates_a_completed_order_once_and_it_counts_for_the_worker(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Stars on the order and its history; a second rating, a rating of an open
    order or of another's order is refused; the worker's mean shows once it rests
    on enough ratings (DISPATCH_MIN_SAMPLES, 5 by default)."""
    open_oid = (await customer.create(city)).json()["id"]
    r = await customer.http.post(f"/v1/orders/{open_oid}/rating", json={"stars": 4})
    assert (r.status_code, r.json()["code"]) == (409, "not_rateable")
    await customer.http.post(f"/v1/orders/{open_oid}/cancel")  # not to be offered below
    r = await customer.http.post(f"/v1/orders/{open_oid}/rating", json={"stars": 4})
    assert (r.status_code, r.json()["code"]) == (409, "not_rateable")  # cancelled: no work
    stars = [5, 4, 5, 3]
    for n, given in enumerate(stars):
        oid = await _completed(server, customer, city, "rated")
        if n == 0:
            for bad in ({"stars": 0}, {"stars": 6}, {}, {"stars": 5, "x": 1}):
                r = await customer.http.post(f"/v1/orders/{oid}/rating", json=bad)
                assert r.status_code == 400, bad
            other = Customer(server.url)
            r = await other.http.post(f"/v1/orders/{oid}/rating", json={"stars": 1})
            assert (r.status_code, r.json()["code"]) == (404, "order_not_found")
            await other.close()
        r = await customer.http.post(f"/v1/orders/{oid}/rating",
                                     json={"stars": given, "comment": "ok"})  # fmt: skip
        assert r.status_code == 200 and r.json()["rating"] == given, r.text
        (event,) = _events(r.json(), "rated")
        assert (event["data"], event["worker"], event["state"]) == (
            {"stars": given, "comment": "ok"}, "rated", "completed")  # fmt: skip
    r = await customer.http.post(f"/v1/orders/{oid}/rating", json={"stars": 1})
    assert (r.status_code, r.json()["code"]) == (409, "already_rated")
    standing = (await admin.http.get(f"/v1/admin/workers/{city}/rated")).json()
    _, month = standing["performance"]
    assert (month["ratings"], month["rating"]) == (4, None)  # 4 < 5 samples
    oid = await _completed(server, customer, city, "rated")
    await customer.http.post(f"/v1/orders/{oid}/rating", json={"stars": 4})
    standing = (await admin.http.get(f"/v1/admin/workers/{city}/rated")).json()
    week, month = standing["performance"]
    assert (week["days"], week["ratings"], week["rating"]) == (7, 5, 4.2)
    assert (month["days"], month["ratings"], month["rating"]) == (30, 5, 4.2)
    assert (month["offers"], month["accepted"], month["acceptance"]) == (5, 5, 1.0)


async def test_a_workers_offers_count_as_received_accepted_rejected_or_expired(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """Each offer counts once as received and once by how it ended; the mean
    answer time counts answers only, and rates wait for enough samples."""
    w = await _worker(server, "counted", city)
    for n in range(6):
        oid = (await customer.create(city)).json()["id"]
        offer = await w.offer()
        if n == 5:  # let it run out
            await w.next_where(lambda m: getattr(m, "reason", None) == "expired")
            await customer.http.post(f"/v1/orders/{oid}/cancel")
            continue
        kind = "accept" if n % 2 == 0 else "reject"
        ack = await w.request({"type": kind, "offer_id": offer.offer_id})
        assert isinstance(ack, Ack), ack
        await customer.http.post(f"/v1/orders/{oid}/cancel")
    standing = (await admin.http.get(f"/v1/admin/workers/{city}/counted")).json()
    week, month = standing["performance"]
    assert week == {**month, "days": 7}
    assert (month["offers"], month["accepted"], month["rejected"], month["expired"]) == (
        6, 3, 2, 1)  # fmt: skip
    assert month["acceptance"] == 0.5  # 3 of 6 offers: 6 samples are enough
    # 5 answers, and DISPATCH_MIN_SAMPLES is 5: the mean shows; each answer came
    # within the offer's timeout
    assert 0 <= month["response_ms"] < 1000 * UNIT
    await w.close()


async def test_a_worker_reads_its_own_figures_on_its_socket_and_over_http(
    server: ServerProcess, admin: Admin, customer: Customer, city: str
) -> None:
    """The worker's figures are the operators' (the same windows), with when it
    last completed a job; over HTTP with its token, and refused with another's."""
    before = int(time.time() * 1000) - 5_000
    await _completed(server, customer, city, "self")
    w = await _worker(server, "self", city)
    got = await w.request({"type": "figures"})
    assert isinstance(got, Figures) and got.id is not None, got  # answers its frame
    standing = (await admin.http.get(f"/v1/admin/workers/{city}/self")).json()
    assert [msgspec.to_builtins(p) for p in got.performance] == standing["performance"]
    assert got.last_job_at is not None and got.last_job_at >= before
    assert got.last_job_at == standing["last_job_at"]
    (week, month) = got.performance
    assert (week.days, week.offers, week.accepted, month.days) == (7, 1, 1, 30)
    token = worker_token("self", city)
    r = await customer.http.get("/v1/worker/figures",
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "figures" and body["performance"] == standing["performance"]
    assert body["last_job_at"] == got.last_job_at
    r = await customer.http.get("/v1/worker/figures")  # the customer's own token
    assert r.status_code == 403, r.text
    await w.close()
