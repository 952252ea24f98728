"""The worker's WebSocket: session start, then one handler per message type.

A session is: handshake (token in the ``Authorization`` header or ``token``
query parameter, checked before the socket is accepted), ``hello`` →
``welcome``, then messages until the socket closes. Frames for the worker
(offers, withdrawals, cancellations) arrive through the hub and leave in order
through one outbox. A malformed frame gets an ``error`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from functools import partial

import msgspec
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.errors import message
from protocol.messages import (
    SUPPORTED_VERSIONS,
    AcceptOffer,
    Ack,
    ChangeStatus,
    Error,
    Hello,
    Job,
    LocationReported,
    OfferMade,
    OfferReceived,
    OrderState,
    Ping,
    RejectOffer,
    ReportProgress,
    Welcome,
    WorkerMessage,
    WorkerState,
)
from server import auth
from server.core.errors import ClientError
from server.core.order_states import TERMINAL
from server.runtime import Runtime
from server.store.keys import WorkerId
from server.store.records import job
from server.store.redis_store import StoreUnavailable

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
CLOSE_REPLACED = 4000
CLOSE_BAD_VERSION = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_STORE_LOST = 1011


class WorkerSession:
    """One worker's socket on this node."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, rt: Runtime) -> None:
        # The Starlette WebSocket serves the handshake and the closes; the
        # per-message paths use the raw ASGI callables (measured: Starlette's
        # state checks were ~4% of the server's CPU at 25k reports/s).
        self.ws = WebSocket(scope, receive, send)
        self._receive = receive
        self._send = send
        self.rt = rt
        self.identity: auth.Identity | None = None
        self.jobs: set[str] = set()
        self._outbox: collections.deque[bytes] = collections.deque()
        self._held = True
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ outgoing

    def deliver(self, kind: str, order_id: str, frame: bytes) -> None:
        """A frame from the hub (``offer``, ``withdrawn`` or ``cancelled``)."""
        if kind == "cancelled":
            self.jobs.discard(order_id)
        self.send(frame)
        if kind == "offer":
            self.rt.stats["offers_delivered"] += 1

    def replaced(self) -> None:
        """The worker connected again elsewhere on this node: close this socket."""
        self._closing = asyncio.get_running_loop().create_task(self.ws.close(CLOSE_REPLACED))

    def send(self, frame: bytes) -> None:
        self._outbox.append(frame)
        if not self._held and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def reply(self, msg: msgspec.Struct) -> None:
        self.send(codec.encode(msg))

    async def _drain(self) -> None:
        try:
            while self._outbox:
                await self._send(
                    {"type": "websocket.send", "text": self._outbox.popleft().decode()}
                )
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._outbox.clear()
        finally:
            self._writer = None

    # ------------------------------------------------------------ session

    async def run(self) -> None:
        token = auth.bearer(self.ws.headers.get("authorization")) or self.ws.query_params.get(
            "token"
        )
        if token:
            try:
                self.identity = auth.verify(self.rt.settings.jwt_secret, token, "worker")
            except ClientError:
                await self.ws.close(code=1008)  # before accept: the handshake gets 403
                return
        await self.ws.accept()
        try:
            await self._session()
        except WebSocketDisconnect:
            pass
        except StoreUnavailable as exc:
            log.warning("worker session ended, store unavailable: %s", exc)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                code = "unavailable"
                await self._close_with(Error(code=code, message=message(code)), CLOSE_STORE_LOST)
        finally:
            await self._end()

    async def _session(self) -> None:
        if not await self._hello():
            return
        receive, decode = self._receive, codec.worker_decoder.decode
        while True:
            msg = await receive()
            if msg["type"] != "websocket.receive":
                return
            data = msg.get("text")
            try:
                decoded = decode(data if data is not None else msg.get("bytes", b""))
            except msgspec.DecodeError as exc:
                self.reply(Error(code=codec.error_code(exc), message=str(exc)))
                continue
            if type(decoded) is LocationReported:  # the hot path: no coroutine, no await
                self._locate(decoded)
            else:
                await self._handle(decoded)

    def _locate(self, msg: LocationReported) -> None:
        """Buffer the newest point; ack (if asked) once it is stored."""
        me = self.identity
        assert me is not None
        last = msg.points[-1]
        ack = partial(self.send, codec.encode(Ack(id=msg.id))) if msg.id else None
        self.rt.ingest.report(me.city, me.subject, (last.lng, last.lat, last.at), self.jobs, ack)

    async def _hello(self) -> bool:
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), HELLO_TIMEOUT_S)
            except TimeoutError:
                await self.ws.close(CLOSE_UNAUTHORIZED)
                return False
            if msg["type"] == "websocket.disconnect":
                return False
            try:
                hello = codec.worker_decoder.decode(msg.get("text") or msg.get("bytes") or b"")
            except msgspec.DecodeError as exc:
                await self._send_direct(Error(code=codec.error_code(exc), message=str(exc)))
                continue
            if isinstance(hello, Hello):
                return await self._welcome(hello)
            code = "hello_required"
            await self._send_direct(Error(code=code, message=message(code), id=hello.id))

    async def _send_direct(self, msg: msgspec.Struct) -> None:
        """Send before ``welcome``: the outbox is held until then."""
        await self.ws.send_text(codec.encode(msg).decode())

    def _open_outbox(self, first: bytes) -> None:
        """Send ``first``, then whatever the hub queued meanwhile, then everything after."""
        self._outbox.appendleft(first)
        self._held = False
        self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _welcome(self, hello: Hello) -> bool:
        versions = set(hello.versions) & set(SUPPORTED_VERSIONS)
        if not versions:
            code = "unsupported_version"
            await self._close_with(Error(code=code, message=message(code), id=hello.id),
                                   CLOSE_BAD_VERSION)  # fmt: skip
            return False
        if self.identity is None:
            try:
                self.identity = auth.verify(self.rt.settings.jwt_secret, hello.token, "worker")
            except ClientError as exc:
                close = CLOSE_FORBIDDEN if exc.code == "forbidden" else CLOSE_UNAUTHORIZED
                await self._close_with(
                    Error(code=exc.code, message=exc.message, id=hello.id), close
                )
                return False
        me = self.identity
        self.rt.hub.attach(me.subject, self)
        record = await self.rt.store.connect(
            me.city, WorkerId(me.subject), self.rt.node, me.skills, me.capacity
        )
        self.jobs = set(record.jobs)
        offer = (
            msgspec.json.decode(record.offer_frame, type=OfferMade) if record.offer_frame else None
        )
        jobs = [job(fields) for fields in await self.rt.store.jobs(record.jobs)]
        welcome = Welcome(
            version=max(versions), worker_id=me.subject, city=me.city,
            state=WorkerState(record.state), node=self.rt.node, offer=offer, jobs=jobs, id=hello.id,
        )  # fmt: skip
        self._open_outbox(codec.encode(welcome))
        return True

    async def _close_with(self, error: Error, code: int) -> None:
        await self._send_direct(error)
        await self.ws.close(code)

    async def _end(self) -> None:
        me = self.identity
        if me is not None and self.rt.hub.detach(me.subject, self):
            with contextlib.suppress(StoreUnavailable):
                await self.rt.store.disconnect(me.city, WorkerId(me.subject), self.rt.node)

    # ------------------------------------------------------------ messages

    async def _handle(self, msg: WorkerMessage) -> None:
        try:
            reply = await self._apply(msg)
        except ClientError as exc:
            reply = Error(code=exc.code, message=exc.message, id=msg.id)
        except StoreUnavailable:
            reply = Error(code="unavailable", message=message("unavailable"), id=msg.id)
        if reply is not None:
            self.reply(reply)

    async def _apply(self, msg: WorkerMessage) -> msgspec.Struct | None:
        me = self.identity
        assert me is not None
        wid, rt = WorkerId(me.subject), self.rt
        match msg:
            case ChangeStatus(status=status):
                state = await rt.dispatcher.set_status(wid, me.city, status)
                return Ack(id=msg.id, state=WorkerState(state))
            case AcceptOffer(offer_id=offer):
                acc = await rt.dispatcher.accept(wid, me.city, offer)
                oid = offer.rpartition("/")[0]
                self.jobs.add(oid)
                job = Job(order_id=oid, state=OrderState(acc.order_state), skill=acc.skill,
                          pickup=acc.pickup, dropoff=acc.dropoff, note=acc.note)  # fmt: skip
                return Ack(id=msg.id, state=WorkerState(acc.worker_state), job=job,
                           server_time=rt.dispatcher.now())  # fmt: skip
            case RejectOffer(offer_id=offer, reason=reason):
                state = await rt.dispatcher.reject(wid, me.city, offer, reason)
                return Ack(id=msg.id, state=WorkerState(state))
            case ReportProgress(order_id=oid, step=step):
                order_state, state = await rt.dispatcher.progress(wid, me.city, oid, step)
                if OrderState(order_state) in TERMINAL:
                    self.jobs.discard(oid)
                return Ack(id=msg.id, state=WorkerState(state))
            case OfferReceived():
                rt.stats["offers_acknowledged"] += 1
                return Ack(id=msg.id)
            case Ping():
                return Ack(id=msg.id, server_time=rt.dispatcher.now())
            case Hello():
                return Error(code="already_hello", message=message("already_hello"), id=msg.id)
        return None  # location frames never get here: _session takes them on its hot path


class WorkerEndpoint:
    """The ASGI app for ``/v1/worker``. A class, not a function, so that
    Starlette's ``WebSocketRoute`` hands it the raw ASGI callables."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await WorkerSession(scope, receive, send, scope["app"].state.runtime).run()
