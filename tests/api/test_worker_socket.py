"""The worker socket's edges: authentication, version, malformed frames, size limit."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from protocol.messages import Ack, Error, Welcome
from server.process import auth
from server.store import keys
from tests.support import (
    TOKENS,
    UNIT,
    ServerProcess,
    WorkerClient,
    customer_token,
    redis_client,
    server_frame,
    worker_token,
)

BAD_FRAMES = [
    ("not json", "bad_json"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "accept"}', "missing_field"),
    ('{"type": "accept", "offer_id": 7}', "invalid_field"),
    ('{"type": "location", "points": [{"lat": 91, "lng": 0, "at": 1}]}', "out_of_range"),
    ('{"type": "location", "points": [{"lat": 1e999, "lng": 0, "at": 1}]}', "out_of_range"),
    ('{"type": "location", "points": [{"lat": NaN, "lng": 0, "at": 1}]}', "bad_json"),
    ('{"type": "location", "points": []}', "invalid_field"),
    ('{"type": "status", "status": "asleep"}', "invalid_field"),
    ("[1, 2]", "invalid_field"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_malformed_frame_gets_error_and_socket_stays_open(
    server: ServerProcess, city: str, frame: str, code: str
) -> None:
    """Each malformed frame gets an error with a stable code; the session carries on."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    await w.send(frame)
    error = await w.expect(Error)
    assert error.code == code
    pong = await w.request({"type": "ping"})
    assert isinstance(pong, Ack) and pong.server_time
    assert w.welcome.state == "offline"
    await w.close()


async def test_bad_frame_changes_nothing(server: ServerProcess, city: str) -> None:
    """A status frame with a bad value leaves the worker's state as it was."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    await w.send('{"type": "status", "status": "asleep"}')
    await w.expect(Error)
    await w.close()
    again = await WorkerClient.connect(server.ws_url, "w", city, status=None)
    assert again.welcome.state == "available"
    await again.close()


async def test_oversized_frame_closes_with_1009(server: ServerProcess, city: str) -> None:
    """A frame above the size limit closes the connection with code 1009."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    await w.send('{"type": "ping", "id": "' + "x" * 20000 + '"}')
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(w.ws.recv(), 5 * UNIT)
    assert w.ws.close_code == 1009


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        auth.mint(
            auth.TokenPolicy("another-secret-that-is-long-enough!!"),
            "worker",
            "w",
            ttl_s=60,
            city="x",
        ),
        auth.mint(TOKENS, "worker", "w", ttl_s=60, city="x", now=0),
        customer_token("c1"),
    ],
    ids=["garbage", "wrong-key", "expired", "customer-token"],
)
async def test_bad_token_is_refused_at_handshake(server: ServerProcess, token: str) -> None:
    """A missing, invalid or wrong-role token at the handshake gets HTTP 403 and no socket."""
    with pytest.raises(InvalidStatus) as err:
        await connect(
            f"{server.ws_url}/v1/worker", additional_headers={"Authorization": f"Bearer {token}"}
        )
    assert err.value.response.status_code == 403


async def test_token_in_hello(server: ServerProcess, city: str) -> None:
    """Without a handshake token, hello may carry it; a bad one gets unauthorized and close 4401."""
    async with connect(f"{server.ws_url}/v1/worker") as ws:
        await ws.send('{"type": "hello", "versions": [1], "token": "nope", "id": "h1"}')
        reply = server_frame(await ws.recv())
        assert isinstance(reply, Error) and (reply.code, reply.id) == ("unauthorized", "h1")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401
    async with connect(f"{server.ws_url}/v1/worker") as ws:
        token = worker_token("w", city)
        await ws.send(f'{{"type": "hello", "versions": [1], "token": "{token}"}}')
        assert isinstance(server_frame(await ws.recv()), Welcome)


async def test_first_frame_must_be_hello_and_versions_must_match(
    server: ServerProcess, city: str
) -> None:
    """A non-hello first frame gets hello_required; no common version gets unsupported_version."""
    headers = {"Authorization": f"Bearer {worker_token('w', city)}"}
    async with connect(f"{server.ws_url}/v1/worker", additional_headers=headers) as ws:
        await ws.send('{"type": "ping", "id": "p"}')
        reply = server_frame(await ws.recv())
        assert isinstance(reply, Error) and reply.code == "hello_required"
        await ws.send('{"type": "hello", "versions": [99]}')
        reply = server_frame(await ws.recv())
        assert isinstance(reply, Error) and reply.code == "unsupported_version"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4400


async def test_second_hello_is_refused(server: ServerProcess, city: str) -> None:
    """hello on an open session gets already_hello."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    reply = await w.request({"type": "hello", "versions": [1]})
    assert isinstance(reply, Error) and reply.code == "already_hello"
    await w.close()


async def test_location_batch_stores_the_latest_point(
    server: ServerProcess, redis_url: str, city: str
) -> None:
    """A batch of points is acknowledged once stored; the newest point is the worker's position,
    and "last seen" is when the server stored it, not the phone's time."""
    w = await WorkerClient.connect(server.ws_url, "w", city)
    phone = int(time.time() * 1000) - 20_000  # a phone clock 20 s slow
    points = [{"lat": 52.5 + i / 100, "lng": 13.4, "at": phone + i} for i in range(5)]
    before = time.time() * 1000
    ack = await w.request({"type": "location", "points": points})
    after = time.time() * 1000
    assert isinstance(ack, Ack)
    client = redis_client(redis_url)
    (where,) = await client.geopos(keys.pos(city), "w")
    seen = await client.zscore(keys.seen(city), "w")
    await client.aclose()
    assert where is not None and math.isclose(where[1], 52.54, abs_tol=1e-5)
    assert seen is not None and before - 50 <= seen <= after + 50
    await w.close()


async def test_newer_connection_replaces_older(server: ServerProcess, city: str) -> None:
    """A second socket of the same worker takes over; the first is closed with 4409."""
    first = await WorkerClient.connect(server.ws_url, "w", city)
    second = await WorkerClient.connect(server.ws_url, "w", city, status=None)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(first.ws.recv(), 5 * UNIT)
    assert first.ws.close_code == 4409
    assert isinstance(await second.request({"type": "ping"}), Ack)
    await second.close()


async def test_customer_token_in_hello_is_forbidden(server: ServerProcess) -> None:
    """A valid customer token in hello gets forbidden and the close 4403."""
    async with connect(f"{server.ws_url}/v1/worker") as ws:
        await ws.send(f'{{"type": "hello", "versions": [1], "token": "{customer_token("c")}"}}')
        reply = server_frame(await ws.recv())
        assert isinstance(reply, Error) and reply.code == "forbidden"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4403
