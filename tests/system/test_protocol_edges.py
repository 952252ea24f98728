"""What PROTOCOL.md promises at the edges, tried against a real server.

Each test is one promise where the document and an earlier server disagreed
or where the server used to be silent: binary frames, unreadable ids, fixes
from a wrong clock, cities the deployment does not serve, bodies too large,
too slow or nested too deeply, data in the store that no longer decodes.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protocol.messages import Ack, Error, EventHappened, Snapshot, Welcome
from server.store import keys
from tests.support import (
    UNIT,
    Customer,
    ServerProcess,
    WorkerClient,
    note_raw,
    redis_client,
    server_frame,
    unique_city,
    worker_token,
)

NESTED = "[" * 3000 + "]" * 3000  # deeper than msgspec decodes (about 1000)


async def test_binary_frame_is_refused_and_changes_nothing(
    server: ServerProcess, city: str
) -> None:
    """A binary frame, even holding valid JSON, is binary_frame; the session goes on."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    await w.ws.send(b'{"type": "status", "status": "paused"}')
    error = await w.expect(Error)
    assert error.code == "binary_frame"
    again = await w.request({"type": "ping"})
    assert isinstance(again, Ack)
    await w.close()
    back = await WorkerClient.connect(server.ws_url, "w", city, status=None)
    assert back.welcome.state == "available"
    await back.close()


@pytest.mark.parametrize(
    ("frame", "code", "echoed"),
    [
        ('{"type": "accept", "offer_id": 7, "id": "a-1"}', "invalid_field", "a-1"),
        ('{"type": "accept", "offer_id": "not an offer", "id": "a-2"}', "invalid_field", "a-2"),
        ('{"type": "teleport", "id": "t-3"}', "unknown_type", "t-3"),
        ('{"id": "n-4"}', "missing_field", "n-4"),
        ('{"type": "ping", "id": 5}', "invalid_field", None),
        ('{"type": "ping", "id": "' + "x" * 65 + '"}', "invalid_field", None),
        ('{"type": "ping", "id": "k-6", "x": NaN}', "bad_json", None),
        ('{"type": "hello", "versions": [], "id": "h-7"}', "invalid_field", "h-7"),
        ('"just a string"', "invalid_field", None),
    ],
)
async def test_error_echoes_a_readable_id(
    server: ServerProcess, city: str, frame: str, code: str, echoed: str | None
) -> None:
    """A malformed frame's error echoes its id when the frame is an object with a string id."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    await w.send(frame)
    error = await w.expect(Error)
    assert (error.code, error.id) == (code, echoed)
    await w.close()


async def test_nested_json_before_hello_is_an_error_frame(server: ServerProcess, city: str) -> None:
    """JSON nested too deeply, sent before hello, gets bad_json and the socket stays open."""
    headers = {"Authorization": f"Bearer {worker_token('w', city)}"}
    async with connect(f"{server.ws_url}/v1/worker", additional_headers=headers) as ws:
        await ws.send('{"type": "hello", "versions": [1], "x": ' + NESTED + "}")
        error = server_frame(await ws.recv())
        assert isinstance(error, Error) and error.code == "bad_json" and "deep" in error.message
        await ws.send('{"type": "hello", "versions": [1]}')
        assert isinstance(server_frame(await ws.recv()), Welcome)


async def test_nested_json_in_a_body_is_a_400(customer: Customer, city: str) -> None:
    """Deep nesting inside pickup is a coded 400, not a 500, and the connection is kept."""
    pickup = '{"lat": 1, "lng": 1, "z": ' + NESTED + "}"
    body = '{"city": "' + city + '", "skill": "x", "pickup": ' + pickup + "}"
    r = await customer.http.post("/v1/orders", content=body)
    assert r.status_code == 400 and r.json()["code"] == "bad_json"
    assert "Traceback" not in r.text
    again = await customer.create(city)
    assert again.status_code == 201


async def test_acks_of_location_and_receipt_carry_no_state(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """As §16 shows: acks of location and offer_received have no state."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    fix = {"lat": 52.52, "lng": 13.40, "at": int(time.time() * 1000)}
    ack = await w.request({"type": "location", "points": [fix]})
    assert isinstance(ack, Ack) and ack.state is None
    await customer.create(city)
    offer = await w.offer()
    receipt = await w.request({"type": "offer_received", "offer_id": offer.offer_id})
    assert isinstance(receipt, Ack) and receipt.state is None
    await w.close()


async def test_a_receipt_is_acked_unless_its_offer_id_is_malformed(
    server: ServerProcess, city: str
) -> None:
    """As §5 says: a well-formed offer id never sent is acked; a malformed one is invalid_field."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    unknown = await w.request({"type": "offer_received", "offer_id": f"{city}.00000000/1"})
    assert isinstance(unknown, Ack) and unknown.state is None
    bad = await w.request({"type": "offer_received", "offer_id": "not an offer"})
    assert isinstance(bad, Error) and bad.code == "invalid_field" and "offer_id" in bad.message
    await w.close()


@pytest.mark.parametrize("skew_s", [-7200, 3600])
async def test_a_fix_far_from_the_server_clock_is_refused(
    server: ServerProcess, city: str, skew_s: int
) -> None:
    """A fix two hours old or an hour in the future is bad_fix_time and is not stored."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    fix = {"lat": 50.0, "lng": 10.0, "at": int((time.time() + skew_s) * 1000)}
    error = await w.request({"type": "location", "points": [fix]})
    assert isinstance(error, Error) and error.code == "bad_fix_time"
    assert (await w.request({"type": "ping"})).__class__ is Ack
    await w.close()


async def test_a_slow_phone_clock_still_gets_work(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """A phone 31 s slow is still a candidate: "last seen" is the server's receipt time."""
    w = await WorkerClient.connect(server.ws_url, "slow", city)
    fix = {"lat": 52.52, "lng": 13.40, "at": int((time.time() - 31) * 1000)}
    assert isinstance(await w.request({"type": "location", "points": [fix]}), Ack)
    await customer.create(city)
    assert (await w.offer()).order_id
    await w.close()


async def test_unserved_city_is_refused_for_orders_and_workers(
    server: ServerProcess, customer: Customer
) -> None:
    """An order in a city the deployment does not serve is a 400; so is a worker's hello."""
    r = await customer.create("atlantis")
    assert r.status_code == 400 and r.json()["code"] == "unknown_city"
    headers = {"Authorization": f"Bearer {worker_token('w', 'atlantis')}"}
    async with connect(f"{server.ws_url}/v1/worker", additional_headers=headers) as ws:
        await ws.send('{"type": "hello", "versions": [1], "id": "h"}')
        error = server_frame(await ws.recv())
        assert isinstance(error, Error) and (error.code, error.id) == ("unknown_city", "h")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4403


async def test_body_over_the_limit_is_413(customer: Customer, city: str) -> None:
    """A body larger than max_frame_bytes gets 413 too_large."""
    r = await customer.create(city, note="x" * 400, extra="y" * 20_000)
    assert r.status_code == 413 and r.json()["code"] == "too_large"


async def test_body_that_never_arrives_is_408(server: ServerProcess, customer: Customer) -> None:
    """A request whose body stops half way gets 408 request_timeout after body_timeout_s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + customer.token.encode() + b"\r\n"
        b'Content-Length: 100\r\n\r\n{"city":'
    )
    await writer.drain()
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * UNIT)
    took = time.monotonic() - started
    assert head.startswith(b"HTTP/1.1 408")
    body = await asyncio.wait_for(reader.read(4096), 5 * UNIT)
    note_raw(body)
    writer.close()
    await writer.wait_closed()
    assert b"request_timeout" in body and 0.5 <= took <= 5 * UNIT


async def test_undecodable_stored_order_is_a_logged_500(
    server: ServerProcess, customer: Customer, city: str, redis_url: str
) -> None:
    """An order record the server cannot read (corrupted in Redis) answers 500 internal, with
    no traceback, and the connection stays usable."""
    oid = (await customer.create(city)).json()["id"]
    client = redis_client(redis_url)
    await client.hset(keys.order(oid), "state", "bogus")
    await client.aclose()
    r = await customer.http.get(f"/v1/orders/{oid}")
    assert r.status_code == 500 and r.json()["code"] == "internal"
    assert "Traceback" not in r.text
    assert (await customer.create(city)).status_code == 201


async def test_refusals_reach_the_worker_with_their_codes(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """Each refusal of §5 reaches the app as its code: offer_pending, illegal_step,
    offer_not_found, offer_taken and order_cancelled."""
    a = await WorkerClient.connect(server.ws_url, "a", city)
    b = await WorkerClient.connect(server.ws_url, "b", city, lat=52.5205)
    oid = (await customer.create(city, mode="broadcast")).json()["id"]
    offer_a, offer_b = await a.offer(), await b.offer()
    pending = await a.request({"type": "status", "status": "paused"})
    assert isinstance(pending, Error) and pending.code == "offer_pending"
    assert isinstance(await a.request({"type": "accept", "offer_id": offer_a.offer_id}), Ack)
    taken = await b.request({"type": "accept", "offer_id": offer_b.offer_id})
    assert isinstance(taken, Error) and taken.code == "offer_taken"
    early = await a.request({"type": "progress", "order_id": oid, "step": "completed"})
    assert isinstance(early, Error) and early.code == "illegal_step"
    unknown = await a.request({"type": "accept", "offer_id": f"{city}.00000000/1"})
    assert isinstance(unknown, Error) and unknown.code == "offer_not_found"
    second = (await customer.create(city)).json()["id"]
    offer = await b.offer()
    assert offer.order_id == second
    await customer.http.post(f"/v1/orders/{second}/cancel")
    late = await b.request({"type": "accept", "offer_id": offer.offer_id})
    assert isinstance(late, Error) and late.code == "order_cancelled"
    await a.close()
    await b.close()


async def test_events_name_their_workers(
    server: ServerProcess, customer: Customer, city: str
) -> None:
    """offered and expired events list their holders; a sequential expired event and a
    cancel after assignment name the worker (PROTOCOL.md §9)."""
    a = await WorkerClient.connect(server.ws_url, "a", city)
    oid = (await customer.create(city)).json()["id"]
    await a.offer()
    await a.silent(1.2)  # the offer times out (offer_timeout_s = 1 unit)
    view = await customer.order(oid)
    offered = next(e for e in view["events"] if e["type"] == "offered")
    expired = next(e for e in view["events"] if e["type"] == "expired")
    assert offered["workers"] == ["a"] and offered["worker"] == "a"
    assert expired["workers"] == ["a"] and expired["worker"] == "a"
    await customer.http.post(f"/v1/orders/{oid}/cancel")  # so it is offered to nobody else
    b = await WorkerClient.connect(server.ws_url, "b", city, lat=52.5203)
    c = await WorkerClient.connect(server.ws_url, "c", city, lat=52.5204)
    oid2 = (await customer.create(city, mode="broadcast")).json()["id"]
    got = {w: await w.offer() for w in (a, b, c)}
    live = await customer.live(oid2)
    snapshot = await live.next_frame()
    assert isinstance(snapshot, Snapshot)
    event = next(e for e in snapshot.order.events if e.type == "offered")
    assert sorted(event.workers or []) == ["a", "b", "c"] and event.worker is None
    assert isinstance(await b.request({"type": "accept", "offer_id": got[b].offer_id}), Ack)
    await customer.http.post(f"/v1/orders/{oid2}/cancel")
    frame = await live.next_frame()
    while not (isinstance(frame, EventHappened) and frame.event.type == "cancelled"):
        frame = await live.next_frame()
    assert frame.event.worker == "b"
    for w in (a, b, c):
        await w.close()


async def test_metrics_need_the_token(redis_url: str) -> None:
    """/metrics is 401 without the metrics token (404 with none configured), 200 with it."""
    token = "metrics-token-for-the-test-123"
    node = ServerProcess(redis_url, env={"DISPATCH_METRICS_TOKEN": token}).start()
    try:
        async with httpx.AsyncClient(base_url=node.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert (wrong.status_code, wrong.json()["code"]) == (401, "unauthorized")
            right = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert right.status_code == 200 and right.text.startswith("# HELP dispatch_")
    finally:
        node.stop()


async def test_origin_allowlist(redis_url: str) -> None:
    """With allowed_origins set, a handshake from another Origin is refused; one from a
    listed Origin, or without any (an app), is accepted."""
    city = unique_city()
    node = ServerProcess(redis_url, env={"DISPATCH_ALLOWED_ORIGINS": "https://ops.example"})
    node.start()
    try:
        headers = {"Authorization": f"Bearer {worker_token('w', city)}"}
        with pytest.raises(Exception, match="403"):
            await connect(f"{node.ws_url}/v1/worker", additional_headers=headers,
                          origin="https://evil.example")  # type: ignore[arg-type]  # fmt: skip
        for origin in ("https://ops.example", None):
            async with connect(f"{node.ws_url}/v1/worker", additional_headers=headers,
                               origin=origin) as ws:  # type: ignore[arg-type]  # fmt: skip
                await ws.send('{"type": "hello", "versions": [1]}')
                assert isinstance(server_frame(await ws.recv()), Welcome)
    finally:
        node.stop()


async def test_order_rate_limit_is_a_429_with_retry_after(redis_url: str) -> None:
    """Past the burst, a customer's orders get 429 rate_limited with Retry-After."""
    city = unique_city()
    node = ServerProcess(
        redis_url, env={"DISPATCH_ORDER_BURST": "3", "DISPATCH_ORDER_RATE_PER_S": "0.2"}
    ).start()
    customer = Customer(node.url)
    try:
        answers = [await customer.create(city) for _ in range(5)]
        assert [r.status_code for r in answers] == [201, 201, 201, 429, 429]
        limited = answers[-1]
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 5
        other = Customer(node.url)
        assert (await other.create(city)).status_code == 201  # limits are per customer
        await other.close()
    finally:
        await customer.close()
        node.stop()
