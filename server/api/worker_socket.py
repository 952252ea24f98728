"""The worker's WebSocket as a transport: the handshake, the read loop, the rate
limits and the outbox. What each frame *does* is :mod:`server.api.worker_handlers`;
this module decides whether a frame gets there, and how the answer gets out.

A session is: handshake (token in the ``Authorization`` header or ``token``
query parameter, checked before the socket is accepted; ``Origin`` checked
against ``allowed_origins`` when set), ``hello`` → ``welcome`` within
``hello_timeout_s`` of the accept (whatever else arrives meanwhile), then
messages until the socket closes.

Frames for the worker (offers, withdrawals, cancellations) arrive through the
hub and leave in order through one outbox, bounded by ``outbox_max_bytes``:
a client that stops reading is closed with 4008, it never grows the server.
Frames from the worker pass two token buckets (location reports, everything
else); a frame over its limit gets ``rate_limited`` and changes nothing, and
a client that keeps at it is closed with 1008. A malformed frame gets an
``error`` (echoing its ``id`` when readable) and changes nothing.

Every close code of the worker socket is sent from here. This module must not
import the dispatcher, the store's records or the core's state rules: what a
message changes belongs to the handlers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import secrets

import msgspec
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.errors import Close
from protocol.messages import SUPPORTED_VERSIONS, Error, Hello, LocationReported, WorkerMessage
from server.api.origins import origin_allowed
from server.api.worker_handlers import Worker, answer, error
from server.core.errors import ClientError
from server.core.limits import Strikes, TokenBucket
from server.node.runtime import Runtime
from server.process import auth, logs
from server.process.logs import Throttled
from server.store.engine import StoreUnavailable

log = logging.getLogger(__name__)

BURST_SECONDS = 3.0  # a bucket holds this many seconds of its rate
STRIKES = 50  # refused frames (forgiven at FORGIVE_PER_S) before the socket is closed (1008)
FORGIVE_PER_S = 1.0
RESYNC_PATIENCE_S = 10.0  # how long a resync keeps trying a store that is settling
_DISCONNECTED = (WebSocketDisconnect, RuntimeError, OSError)
_slow = Throttled(log, "worker %s does not read its socket; closed it (4008)")
_flood = Throttled(log, "worker %s keeps flooding its socket; closed it (1008)")


class WorkerSession:
    """One worker's socket on this node: the link the hub routes the worker's frames to."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, rt: Runtime) -> None:
        # The Starlette WebSocket serves the handshake and the closes; the
        # per-message paths use the raw ASGI callables (measured: Starlette's
        # state checks were ~4% of the server's CPU at 25k reports/s).
        self.ws = WebSocket(scope, receive, send)
        self._receive = receive
        self._send = send
        self.rt = rt
        self.session = secrets.token_hex(8)
        self.identity: auth.Identity | None = None
        self.worker: Worker | None = None  # from a valid hello on, before the hub knows us
        self._outbox: collections.deque[str] = collections.deque()
        self._outbox_bytes = 0
        self._held = True
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._resyncing: asyncio.Task[None] | None = None
        s = rt.settings
        now = asyncio.get_running_loop().time()
        self._locations = TokenBucket(
            s.location_rate_per_s, s.location_rate_per_s * BURST_SECONDS, now
        )
        self._frames = TokenBucket(s.frame_rate_per_s, s.frame_rate_per_s * BURST_SECONDS, now)
        self._strikes = Strikes(STRIKES, FORGIVE_PER_S, now)

    @property
    def city(self) -> str:
        return self.identity.city if self.identity else ""

    # ------------------------------------------------------------ from the hub

    def deliver(self, kind: str, order_id: str, frame: str) -> None:
        """A frame from the hub (``offer``, ``withdrawn``, ``cancelled``, ``job``,
        ``begun`` (a reminder: a booked job is one of its jobs now) or ``hold``;
        ``blocked`` is a hold after which the socket closes, 4403)."""
        assert self.worker is not None  # the hub knows this socket only after hello
        self.worker.delivered(kind, order_id)
        self.send(frame)
        if kind == "blocked":
            self.close_soon(Close.FORBIDDEN)
        figures = self.rt.figures
        figures.frames_out[_HUB_FRAMES.get(kind, kind)] += 1
        if kind == "offer":
            figures.offers["sent"] += 1
        elif kind == "withdrawn":
            figures.offers["expired" if _EXPIRED in frame else "withdrawn"] += 1

    def replaced(self) -> None:
        """A newer connection of this worker took over: close this one (4409)."""
        self.close_soon(Close.REPLACED)

    def restart(self) -> None:
        """This node no longer routes the worker (it was taken over): close (1012) so that
        the app reconnects, here or elsewhere, and is routed again."""
        self.close_soon(Close.RESTART)

    def resync(self) -> None:
        """The node's pub/sub connection was made again: frames sent meanwhile are
        lost, so the worker's record is read again and what it should have sent again."""
        if self._resyncing is None and self._closing is None and not self._held:
            self._resyncing = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        worker = self.worker
        assert worker is not None  # the outbox opens after hello
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESYNC_PATIENCE_S
        while True:
            try:
                await worker.resend()
                break
            except StoreUnavailable as exc:  # a restarted Redis may still be settling
                if loop.time() > deadline:
                    log.warning("resync of worker %s failed: %s", worker.me.subject, exc)
                    break
                await asyncio.sleep(0.2)
        self._resyncing = None

    # ------------------------------------------------------------ outbox

    def send(self, frame: str) -> None:
        """Queue ``frame`` for the worker; a client that lets the queue outgrow
        ``outbox_max_bytes`` is closed (4008) instead."""
        if self._closing is not None:
            return
        self._outbox_bytes += len(frame)
        if self._outbox_bytes > self.rt.settings.outbox_max_bytes:
            _slow(self._who())
            self.rt.stats["slow_readers_closed"] += 1
            self.close_soon(Close.SLOW_READER)
            return
        self._outbox.append(frame)
        if not self._held and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def reply(self, msg: msgspec.Struct) -> None:
        """Queue a message for the worker, counted by its type."""
        self.rt.figures.frames_out[_tag(type(msg))] += 1
        self.send(codec.encode(msg).decode())

    async def _drain(self) -> None:
        try:
            while self._outbox and not self._held:
                frame = self._outbox.popleft()
                self._outbox_bytes -= len(frame)
                await self._send({"type": "websocket.send", "text": frame})
        except _DISCONNECTED:
            self._outbox.clear()
            self._outbox_bytes = 0
        finally:
            self._writer = None

    def _open_outbox(self, first: str) -> None:
        """Send ``first``, then whatever the hub queued meanwhile, then everything after."""
        self._outbox.appendleft(first)
        self._outbox_bytes += len(first)
        self._held = False
        self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _send_direct(self, msg: msgspec.Struct) -> None:
        """Send before ``welcome``: the outbox is held until then."""
        await self.ws.send_text(codec.encode(msg).decode())

    def close_soon(self, code: int) -> None:
        """Close with ``code`` once what is already queued has gone out (nothing more is
        queued from now on); a slow reader's queue is dropped instead."""
        if self._closing is None:
            if code == Close.SLOW_READER:
                self._outbox.clear()
                self._held = True
            self._closing = asyncio.get_running_loop().create_task(self._close_quietly(code))

    async def _close_quietly(self, code: int) -> None:
        with contextlib.suppress(*_DISCONNECTED):
            if self._writer is not None:  # the send deadline below uvicorn bounds this wait
                await asyncio.shield(self._writer)
            self._held = True
            await self.ws.close(code)

    async def _close_with(self, refusal: Error, code: int) -> None:
        await self._send_direct(refusal)
        await self.ws.close(code)

    # ------------------------------------------------------------ session

    async def run(self) -> None:
        if not origin_allowed(self.ws.headers.get("origin"), self.rt.settings.allowed_origins):
            await self.ws.close(code=Close.POLICY)  # before accept: the handshake gets 403
            return
        token = auth.bearer(self.ws.headers.get("authorization")) or self.ws.query_params.get(
            "token"
        )
        if token:
            try:
                self.identity = self.rt.verify(token, "worker")
            except ClientError:
                await self.ws.close(code=Close.POLICY)  # before accept: the handshake gets 403
                return
        await self.ws.accept()
        try:
            await self._session()
        except WebSocketDisconnect:
            pass
        except StoreUnavailable as exc:
            log.warning("worker session ended, store unavailable: %s", exc)
            with contextlib.suppress(*_DISCONNECTED):
                await self._close_with(error("unavailable"), Close.STORE_LOST)
        finally:
            await self._end()

    async def _session(self) -> None:
        if not await self._hello():
            return
        worker = self.worker
        assert worker is not None
        logs.WORKER.set(worker.me.subject)  # this socket's task only
        receive, decode = self._receive, codec.worker_decoder.decode
        locate = worker.locate
        loop = asyncio.get_running_loop()
        frames_in = self.rt.figures.frames_in
        while True:
            if self._closing is not None:  # flooded, slow or replaced: stop reading
                await self._closing
                return
            msg = await receive()
            if msg["type"] != "websocket.receive":
                return
            data = msg.get("text")
            if data is None:
                frames_in["(binary)"] += 1
                self._refuse(self._frames, error("binary_frame"), loop.time())
                continue
            try:
                decoded = decode(data)
            except (msgspec.DecodeError, RecursionError):
                found = self._slow_decode(data, loop.time())
                if found is None:
                    continue
                decoded = found
            frames_in[_tag(type(decoded))] += 1
            if type(decoded) is LocationReported:  # the hot path: no coroutine, no await
                if self._allowed(self._locations, decoded.id, loop.time()):
                    locate(decoded)
            elif self._allowed(self._frames, decoded.id, loop.time()):
                await answer(worker, decoded)

    async def _hello(self) -> bool:
        """Wait for ``hello`` until the deadline, counted from the accept."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rt.settings.hello_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self.ws.receive()
            except TimeoutError:
                await self.ws.close(Close.UNAUTHORIZED)
                return False
            if msg["type"] == "websocket.disconnect":
                return False
            data = msg.get("text")
            if data is None:
                await self._send_direct(error("binary_frame"))
                continue
            try:
                hello = codec.decode(codec.worker_decoder, data)
            except msgspec.DecodeError as exc:
                refusal = error(codec.error_code(exc), codec.readable_id(data), str(exc))
                await self._send_direct(refusal)
                continue
            if isinstance(hello, Hello):
                return await self._welcome(hello)
            await self._send_direct(error("hello_required", hello.id))

    async def _welcome(self, hello: Hello) -> bool:
        """Check ``hello``'s versions, token and city, start the worker's session and open
        the outbox with ``welcome``; False if the socket was closed instead."""
        versions = set(hello.versions) & set(SUPPORTED_VERSIONS)
        if not versions:
            await self._close_with(error("unsupported_version", hello.id), Close.BAD_REQUEST)
            return False
        if self.identity is None:
            try:
                self.identity = self.rt.verify(hello.token, "worker")
            except ClientError as exc:
                close = Close.FORBIDDEN if exc.code == "forbidden" else Close.UNAUTHORIZED
                await self._close_with(error(exc.code, hello.id, exc.message), close)
                return False
        me = self.identity
        if me.city not in self.rt.dispatcher.cities:
            await self._close_with(error("unknown_city", hello.id), Close.FORBIDDEN)
            return False
        self.worker = worker = Worker(self.rt, me, self.session, self)
        self.rt.hub.attach(me.subject, self)
        try:
            welcome = await worker.start(hello.id, max(versions))
        except ClientError as exc:  # worker_blocked: an operator blocked it
            self.rt.hub.detach(me.subject, self)
            await self._close_with(error(exc.code, hello.id), Close.FORBIDDEN)
            return False
        self._open_outbox(codec.encode(welcome).decode())
        return True

    async def _end(self) -> None:
        worker = self.worker
        if worker is not None and self.rt.hub.detach(worker.me.subject, self):
            with contextlib.suppress(StoreUnavailable):
                await worker.leave()

    # ------------------------------------------------------------ limits

    def _slow_decode(self, data: str, now: float) -> WorkerMessage | None:
        """A frame the fast decoder refused: decoded after all when only its integers
        were spelt as floats (``1.0``, as JSON Schema allows), else refused with its code."""
        try:
            return codec.decode(codec.worker_decoder, data)
        except msgspec.DecodeError as exc:
            self.rt.figures.frames_in["(malformed)"] += 1
            refusal = error(codec.error_code(exc), codec.readable_id(data), str(exc))
            self._refuse(self._frames, refusal, now)
            return None

    def _allowed(self, bucket: TokenBucket, id: str | None, now: float) -> bool:
        """Take a token for a frame; refuse it (and count a strike) if there is none."""
        if bucket.take(now):
            return True
        self._strike(error("rate_limited", id), now)
        return False

    def _refuse(self, bucket: TokenBucket, refusal: Error, now: float) -> None:
        """Answer a malformed frame; malformed frames take tokens too."""
        if bucket.take(now):
            self.reply(refusal)
        else:
            self._strike(error("rate_limited", refusal.id), now)

    def _strike(self, refusal: Error, now: float) -> None:
        if self._strikes.hit(now):
            _flood(self._who())
            self.rt.stats["floods_closed"] += 1
            self.close_soon(Close.POLICY)
        else:
            self.reply(refusal)

    def _who(self) -> str:
        return self.identity.subject if self.identity else "(before hello)"


# What the hub's kinds of message are as frames (for the frame counters).
_HUB_FRAMES = {"withdrawn": "offer_withdrawn", "cancelled": "job_cancelled", "job": "job_updated",
               "begun": "reminder", "blocked": "hold"}  # fmt: skip
_EXPIRED = '"reason":"expired"'  # in an offer_withdrawn frame, as the scripts encode it


@functools.cache
def _tag(kind: type[msgspec.Struct]) -> str:
    """A message's ``type`` in the protocol."""
    return str(kind.__struct_config__.tag)


class WorkerEndpoint:
    """The ASGI app for ``/v1/worker``. A class, not a function, so that
    Starlette's ``WebSocketRoute`` hands it the raw ASGI callables."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await WorkerSession(scope, receive, send, scope["app"].state.runtime).run()
