"""Slow readers, floods and half-open connections: every buffer has a bound, every wait a
deadline. Each test starts its own node with the limits it needs, made small."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.messages import Ack, Welcome
from server.services.figures import percentile
from server.store import keys
from tests.support import (
    UNIT,
    Customer,
    ServerProcess,
    WorkerClient,
    redis_client,
    server_frame,
    stalled_post,
    unique_city,
    worker_token,
)

pytestmark = pytest.mark.slow

METRICS = "limits-metrics-token-0123456789"


async def _metrics(node: ServerProcess) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=node.url) as http:
        r = await http.get(
            "/metrics",
            headers={"Authorization": f"Bearer {METRICS}", "Accept": "application/json"},
        )
        data: dict[str, object] = r.json()
        return data


def _small_window(port: int) -> socket.socket:
    """A connected socket with a receive window of a few KiB (set before connecting)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


async def _hello(node: ServerProcess, wid: str, city: str, **kw: object) -> ClientConnection:
    headers = {"Authorization": f"Bearer {worker_token(wid, city)}"}
    ws = await connect(f"{node.ws_url}/v1/worker", additional_headers=headers, **kw)  # type: ignore[arg-type]
    await ws.send('{"type": "hello", "versions": [1]}')
    assert isinstance(server_frame(await ws.recv()), Welcome)
    return ws


async def test_a_client_that_stops_reading_is_dropped(redis_url: str) -> None:
    """A worker app that sends but never reads: once what waits for it passes
    outbox_max_bytes the server drops it (4008, or cut off when even that cannot be
    sent), instead of buffering without end."""
    city = unique_city()
    env = {"DISPATCH_FRAME_RATE_PER_S": "1000000", "DISPATCH_OUTBOX_MAX_BYTES": "65536",
           "DISPATCH_SEND_TIMEOUT_S": "1", "DISPATCH_METRICS_TOKEN": METRICS}  # fmt: skip
    node = ServerProcess(redis_url, env=env).start()
    try:
        ws = await _hello(node, "mute", city, sock=_small_window(node.port), max_queue=1)
        junk = '{"type": "teleport", "id": "' + "x" * 60 + '"}'
        # The client may not see the close: it reads nothing (max_queue=1), so the
        # close frame can sit unread while its sends still fit the kernel's buffers.
        with contextlib.suppress(ConnectionClosed):
            for _ in range(200_000):
                await ws.send(junk)
        deadline = time.monotonic() + 5 * UNIT
        while (await _metrics(node))["slow_readers_closed"] != 1:
            assert time.monotonic() < deadline, "the slow reader was never dropped"
            await asyncio.sleep(0.05)
        other = await WorkerClient.connect(node.ws_url, "other", city)
        assert isinstance(await other.request({"type": "ping"}), Ack)
        await other.close()
    finally:
        node.stop()


# A flooding worker app, in a process of its own so that its sending does not slow
# the test's own client: hello, then 50,000 pings as fast as the socket takes them.
FLOOD = """
import json, sys, threading, websocket
ws = websocket.create_connection(sys.argv[1], header=["Authorization: Bearer " + sys.argv[2]])
ws.send('{"type": "hello", "versions": [1]}')
ws.recv()
codes, close = set(), []

def read():
    try:
        while not close:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                close.append(int.from_bytes(frame.data[:2], "big"))
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                codes.add(json.loads(frame.data).get("code", "?"))
    except Exception:
        pass

reader = threading.Thread(target=read)
reader.start()
sent = 0
try:
    for i in range(50_000):
        ws.send('{"type": "ping", "id": "f%d"}' % i)
        sent += 1
except Exception:
    pass
reader.join(10)
print(json.dumps({"sent": sent, "codes": sorted(codes), "close": close[0] if close else None}))
"""


async def test_a_flood_is_refused_then_closed_and_others_do_not_wait(redis_url: str) -> None:
    """Another process sends 50,000 frames on one socket as fast as it can: frames past its
    limit get rate_limited, the socket is closed with 1008, and another worker's pings, at
    their own pace, stay fast meanwhile."""
    city = unique_city()
    node = ServerProcess(redis_url, env={"DISPATCH_METRICS_TOKEN": METRICS}).start()
    calm = await WorkerClient.connect(node.ws_url, "calm", city)
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, f"{node.ws_url}/v1/worker", worker_token("flood", city),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    latencies: list[float] = []
    try:
        for _ in range(30):
            started = time.perf_counter()
            assert isinstance(await calm.request({"type": "ping"}), Ack)
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)
        out, _ = await asyncio.wait_for(flood.communicate(), 30 * UNIT)
        result = json.loads(out)
        assert result["close"] == 1008 and "rate_limited" in result["codes"]
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(f"flood: {result['sent']} frames sent before the close; calm worker's ping "
              f"meanwhile: p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
        assert p99 < 250 * UNIT
        assert (await _metrics(node))["floods_closed"] == 1
    finally:
        if flood.returncode is None:
            flood.kill()
            await flood.wait()
        await calm.close()
        node.stop()


async def test_the_hello_deadline_counts_from_the_accept(redis_url: str) -> None:
    """A socket that sends a junk frame every 300 ms never says hello: it is closed with
    4401 one hello_timeout_s after it opened, not one after its last frame."""
    node = ServerProcess(redis_url, env={"DISPATCH_HELLO_TIMEOUT_S": "1"}).start()
    try:
        headers = {"Authorization": f"Bearer {worker_token('w', unique_city())}"}
        async with connect(f"{node.ws_url}/v1/worker", additional_headers=headers) as ws:
            opened = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.send('{"type": "ping"}')
                    await asyncio.wait_for(ws.recv(), 1 * UNIT)  # hello_required
                    await asyncio.sleep(0.3)
            took = time.monotonic() - opened
            assert ws.close_code == 4401 and 0.9 <= took <= 1.8 * UNIT
    finally:
        node.stop()


async def test_half_sent_headers_and_silent_connections_are_dropped(
    server: ServerProcess,
) -> None:
    """A connection whose request headers stop half way, or that sends nothing, is closed
    after header_timeout_s (2 s here)."""
    for opening in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(opening)
        await writer.drain()
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 6 * UNIT) == b""
        assert 1.5 <= time.monotonic() - started <= 4 * UNIT
        writer.close()
        await writer.wait_closed()


async def test_past_max_connections_new_clients_get_503(redis_url: str, tmp_path: Path) -> None:
    """With max_connections open, a request and a WebSocket handshake both get 503, and the
    log says why."""
    log = tmp_path / "node.log"
    node = ServerProcess(redis_url, env={"DISPATCH_MAX_CONNECTIONS": "4"}, log=log).start()
    idle = [await asyncio.open_connection("127.0.0.1", node.port) for _ in range(4)]
    try:
        async with httpx.AsyncClient(base_url=node.url) as http:
            assert (await http.get("/healthz")).status_code == 503
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write(
            b"GET /v1/worker HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await asyncio.wait_for(reader.read(), 5 * UNIT)).startswith(b"HTTP/1.1 503")
        writer.close()
        await writer.wait_closed()
        text = log.read_text()
        assert "Exceeded concurrency limit" in text and "max_connections" in text
    finally:
        for _, w in idle:
            w.close()
            await w.wait_closed()
        node.stop()


async def test_shutdown_has_a_deadline(redis_url: str) -> None:
    """SIGTERM with a worker that never reads and a POST whose body never comes: the process
    still exits within shutdown_timeout_s and a little more."""
    city = unique_city()
    env = {"DISPATCH_SHUTDOWN_TIMEOUT_S": "1", "DISPATCH_BODY_TIMEOUT_S": "30"}
    node = ServerProcess(redis_url, env=env).start()
    mute = await _hello(node, "mute", city, sock=_small_window(node.port), max_queue=1)
    customer = Customer(node.url)
    writer = await stalled_post(node.port, customer.token)
    assert node.proc is not None
    started = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(node.proc.wait, 15)
    took = time.monotonic() - started
    writer.close()
    await writer.wait_closed()
    await mute.close()
    await customer.close()
    assert took < 6 * UNIT, f"shutdown took {took:.1f} s"


async def test_a_location_then_a_reset_does_not_bring_the_worker_back(
    server: ServerProcess, redis_url: str
) -> None:
    """A location frame followed at once by a TCP reset: however the two land, the worker
    ends disconnected and out of the search index, and is offered nothing."""
    city = unique_city()
    client = redis_client(redis_url)
    try:
        for round_ in range(5):
            wid = f"gone{round_}"
            ws = await _hello(server, wid, city)
            await ws.send('{"type": "status", "status": "available", "id": "s"}')
            assert isinstance(server_frame(await ws.recv()), Ack)
            fix = '{"type": "location", "points": [{"lat": 52.52, "lng": 13.4, "at": %d}]}'
            await ws.send(fix % int(time.time() * 1000))
            raw = ws.transport.get_extra_info("socket")
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.transport.abort()  # RST, no close frame
            deadline = time.monotonic() + 2 * UNIT
            while await client.hget(keys.worker(city, wid), "node") != b"":
                assert time.monotonic() < deadline, "the worker stayed connected"
                await asyncio.sleep(0.02)
            assert await client.zscore(keys.free(city, "delivery"), wid) is None
        customer = Customer(server.url)  # a worker back in the index would be offered it
        oid = (await customer.create(city)).json()["id"]
        view = await customer.wait_state(oid, "unassigned", timeout=6)
        assert [e["type"] for e in view["events"]] == ["created", "dispatching", "unassigned"]
        await customer.close()
    finally:
        await client.aclose()
