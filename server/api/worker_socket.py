"""The worker's WebSocket: session start, then one handler per message type.

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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import secrets
from functools import partial

import msgspec
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.errors import Close, message
from protocol.messages import (
    SUPPORTED_VERSIONS,
    AcceptOffer,
    Ack,
    AskEarnings,
    AskFigures,
    CancelJob,
    ChangeStatus,
    Error,
    Figures,
    Fix,
    Hello,
    JobCancelled,
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
from server.api.origins import origin_allowed
from server.core.errors import ClientError, InvalidFields
from server.core.limits import Strikes, TokenBucket
from server.core.order_states import TERMINAL
from server.core.worker_states import OFF_DUTY
from server.node.runtime import Runtime
from server.process import auth, logs
from server.process.logs import Throttled
from server.store import keys
from server.store.keys import OrderId, WorkerId
from server.store.records import job
from server.store.redis_store import StoreUnavailable

log = logging.getLogger(__name__)

BURST_SECONDS = 3.0  # a bucket holds this many seconds of its rate
STRIKES = 50  # refused frames (forgiven at FORGIVE_PER_S) before the socket is closed (1008)
FORGIVE_PER_S = 1.0
RESYNC_PATIENCE_S = 10.0  # how long a resync keeps trying a store that is settling
_DISCONNECTED = (WebSocketDisconnect, RuntimeError, OSError)
_slow = Throttled(log, "worker %s does not read its socket; closed it (4008)")
_flood = Throttled(log, "worker %s keeps flooding its socket; closed it (1008)")


def _error(code: str, id: str | None = None, text: str | None = None) -> Error:
    return Error(code=code, message=text or message(code), id=id)


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
        self.session = secrets.token_hex(8)
        self.identity: auth.Identity | None = None
        self.jobs: set[str] = set()
        # The skills whose search index a report moves the worker in: none while it is
        # off duty (offline or paused), which only its own status frames change, so it
        # cannot be in the index then.
        self._index_skills: tuple[str, ...] = ()
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
        self._ahead_ms = s.fix_max_ahead_s * 1000
        self._behind_ms = s.fix_max_behind_s * 1000
        self._last_report = -(1 << 62)  # ms; none yet in this session
        self._silence_ms = s.location_max_age_s * 1000 / 2  # well inside forget_stale's

    @property
    def city(self) -> str:
        return self.identity.city if self.identity else ""

    # ------------------------------------------------------------ outgoing

    def deliver(self, kind: str, order_id: str, frame: str) -> None:
        """A frame from the hub (``offer``, ``withdrawn``, ``cancelled``, ``job``,
        ``begun`` (a reminder: a booked job is one of its jobs now) or ``hold``;
        ``blocked`` is a hold after which the socket closes, 4403)."""
        if kind == "cancelled":
            self.jobs.discard(order_id)
        elif kind == "begun":
            self.jobs.add(order_id)
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

    def send(self, frame: str) -> None:
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

    def _who(self) -> str:
        return self.identity.subject if self.identity else "(before hello)"

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
                await self._close_with(_error("unavailable"), Close.STORE_LOST)
        finally:
            await self._end()

    async def _session(self) -> None:
        if not await self._hello():
            return
        assert self.identity is not None
        logs.WORKER.set(self.identity.subject)  # this socket's task only
        receive, decode = self._receive, codec.worker_decoder.decode
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
                self._refuse(self._frames, _error("binary_frame"), loop.time())
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
                    self._locate(decoded)
            elif self._allowed(self._frames, decoded.id, loop.time()):
                await self._handle(decoded)

    def _slow_decode(self, data: str, now: float) -> WorkerMessage | None:
        """A frame the fast decoder refused: decoded after all when only its integers
        were spelt as floats (``1.0``, as JSON Schema allows), else refused with its code."""
        try:
            return codec.decode(codec.worker_decoder, data)
        except msgspec.DecodeError as exc:
            self.rt.figures.frames_in["(malformed)"] += 1
            error = _error(codec.error_code(exc), codec.readable_id(data), str(exc))
            self._refuse(self._frames, error, now)
            return None

    def _allowed(self, bucket: TokenBucket, id: str | None, now: float) -> bool:
        """Take a token for a frame; refuse it (and count a strike) if there is none."""
        if bucket.take(now):
            return True
        self._strike(_error("rate_limited", id), now)
        return False

    def _refuse(self, bucket: TokenBucket, error: Error, now: float) -> None:
        """Answer a malformed frame; malformed frames take tokens too."""
        if bucket.take(now):
            self.reply(error)
        else:
            self._strike(_error("rate_limited", error.id), now)

    def _strike(self, error: Error, now: float) -> None:
        if self._strikes.hit(now):
            _flood(self._who())
            self.rt.stats["floods_closed"] += 1
            self.close_soon(Close.POLICY)
        else:
            self.reply(error)

    def _locate(self, msg: LocationReported) -> None:
        """Buffer the newest point; ack (if asked) once it is stored."""
        me = self.identity
        assert me is not None
        now = self.rt.store.now_ms()
        points = msg.points
        last = points[-1]
        earliest, latest = (last.at, last.at) if len(points) == 1 else _span(points)
        if latest > now + self._ahead_ms or earliest < now - self._behind_ms:
            self.reply(_error("bad_fix_time", msg.id))
            return
        # The first report of this session, or one after a silence the store may have
        # taken for departure (forget_stale): the worker may have to enter the index.
        first = now - self._last_report > self._silence_ms
        self._last_report = now
        written = partial(self._written, msg.id) if msg.id else None
        self.rt.ingest.report(
            me.city,
            me.subject,
            self._index_skills,
            (last.lng, last.lat, last.at),
            self.jobs,
            first,
            written,
        )

    def _written(self, id: str, ok: bool) -> None:
        self.reply(Ack(id=id) if ok else _error("unavailable", id))

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
                await self._send_direct(_error("binary_frame"))
                continue
            try:
                hello = codec.decode(codec.worker_decoder, data)
            except msgspec.DecodeError as exc:
                error = _error(codec.error_code(exc), codec.readable_id(data), str(exc))
                await self._send_direct(error)
                continue
            if isinstance(hello, Hello):
                return await self._welcome(hello)
            await self._send_direct(_error("hello_required", hello.id))

    async def _send_direct(self, msg: msgspec.Struct) -> None:
        """Send before ``welcome``: the outbox is held until then."""
        await self.ws.send_text(codec.encode(msg).decode())

    def _open_outbox(self, first: str) -> None:
        """Send ``first``, then whatever the hub queued meanwhile, then everything after."""
        self._outbox.appendleft(first)
        self._outbox_bytes += len(first)
        self._held = False
        self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _welcome(self, hello: Hello) -> bool:
        versions = set(hello.versions) & set(SUPPORTED_VERSIONS)
        if not versions:
            await self._close_with(_error("unsupported_version", hello.id), Close.BAD_REQUEST)
            return False
        if self.identity is None:
            try:
                self.identity = self.rt.verify(hello.token, "worker")
            except ClientError as exc:
                close = Close.FORBIDDEN if exc.code == "forbidden" else Close.UNAUTHORIZED
                await self._close_with(_error(exc.code, hello.id, exc.message), close)
                return False
        me = self.identity
        if me.city not in self.rt.dispatcher.cities:
            await self._close_with(_error("unknown_city", hello.id), Close.FORBIDDEN)
            return False
        self.rt.hub.attach(me.subject, self)
        s = self.rt.settings
        try:
            record = await self.rt.store.connect(
                me.city, WorkerId(me.subject), self.rt.node, self.session, me.skills,
                me.capacity, s.retention_s * 1000,
            )  # fmt: skip
        except ClientError as exc:  # worker_blocked: an operator blocked it
            self.rt.hub.detach(me.subject, self)
            await self._close_with(_error(exc.code, hello.id), Close.FORBIDDEN)
            return False
        self.jobs = set(record.jobs)
        self._index_skills = () if record.state in OFF_DUTY else me.skills
        offer = (
            msgspec.json.decode(record.offer_frame, type=OfferMade) if record.offer_frame else None
        )
        orders = await self.rt.store.jobs([*record.jobs, *record.booked])
        jobs = [job(fields) for fields in orders if fields["id"] in self.jobs]
        booked = [job(fields) for fields in orders if fields["id"] not in self.jobs]
        welcome = Welcome(
            version=max(versions), worker_id=me.subject, city=me.city,
            state=WorkerState(record.state), node=self.rt.node, offer=offer, jobs=jobs, id=hello.id,
            paused_until=record.paused_until, booked=booked,
        )  # fmt: skip
        self._open_outbox(codec.encode(welcome).decode())
        return True

    async def _close_with(self, error: Error, code: int) -> None:
        await self._send_direct(error)
        await self.ws.close(code)

    async def _end(self) -> None:
        me = self.identity
        if me is not None and self.rt.hub.detach(me.subject, self):
            with contextlib.suppress(StoreUnavailable):
                await self.rt.store.disconnect(
                    me.city, WorkerId(me.subject), self.rt.node, self.session
                )

    # ------------------------------------------------------------ resync

    def resync(self) -> None:
        """The node's pub/sub connection was made again: frames sent meanwhile are
        lost, so re-read the worker's record and send again what it should have."""
        if self._resyncing is None and self._closing is None and not self._held:
            self._resyncing = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        me = self.identity
        assert me is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESYNC_PATIENCE_S
        while True:
            try:
                await self._resend(me)
                break
            except StoreUnavailable as exc:  # a restarted Redis may still be settling
                if loop.time() > deadline:
                    log.warning("resync of worker %s failed: %s", me.subject, exc)
                    break
                await asyncio.sleep(0.2)
        self._resyncing = None

    async def _resend(self, me: auth.Identity) -> None:
        record = await self.rt.store.worker_record(me.city, WorkerId(me.subject))
        if record.offer_frame:
            self.rt.figures.frames_out["offer"] += 1
            self.send(record.offer_frame)
        gone = [OrderId(oid) for oid in self.jobs - set(record.jobs)]
        self.jobs = set(record.jobs)
        for fields in await self.rt.store.jobs(gone):
            if fields.get("state") == OrderState.CANCELLED:
                self.reply(JobCancelled(order_id=fields["id"]))

    # ------------------------------------------------------------ messages

    async def _handle(self, msg: WorkerMessage) -> None:
        with logs.about_order(_order_named(msg)):
            await self._answer(msg)

    async def _answer(self, msg: WorkerMessage) -> None:
        try:
            reply = await self._apply(msg)
        except ClientError as exc:
            errors = exc.errors if isinstance(exc, InvalidFields) and exc.errors else None
            reply = Error(code=exc.code, message=exc.message, id=msg.id, errors=errors)
        except StoreUnavailable:
            reply = _error("unavailable", msg.id)
        except Exception:
            log.exception("worker %s: %s failed", self._who(), type(msg).__name__)
            reply = _error("internal", msg.id)
        if reply is not None:
            self.reply(reply)

    async def _apply(self, msg: WorkerMessage) -> msgspec.Struct | None:
        me = self.identity
        assert me is not None
        wid, rt = WorkerId(me.subject), self.rt
        match msg:
            case ChangeStatus(status=status):
                state = await rt.dispatcher.set_status(wid, me.city, status)
                self._index_skills = () if state in OFF_DUTY else me.skills
                return Ack(id=msg.id, state=WorkerState(state))
            case AcceptOffer(offer_id=offer):
                acc = await rt.dispatcher.accept(wid, me.city, offer)
                oid = offer.rpartition("/")[0]
                self.jobs.add(oid)
                return Ack(id=msg.id, state=WorkerState(acc.worker_state), job=acc.job,
                           server_time=acc.now)  # fmt: skip
            case RejectOffer(offer_id=offer, reason=reason):
                state = await rt.dispatcher.reject(wid, me.city, offer, reason)
                return Ack(id=msg.id, state=WorkerState(state))
            case ReportProgress(order_id=oid, step=step, data=data):
                done = await rt.dispatcher.progress(wid, me.city, oid, step, data)
                if OrderState(done.order_state) in TERMINAL:
                    self.jobs.discard(oid)
                return Ack(id=msg.id, state=WorkerState(done.worker_state), job=done.job)
            case CancelJob(order_id=oid, reason=reason):
                if keys.city_of(OrderId(oid)) != me.city:
                    return _error("job_not_found", msg.id)
                state = await rt.overrides.hand_back(OrderId(oid), wid, reason)
                self.jobs.discard(oid)
                return Ack(id=msg.id, state=WorkerState(state) if state else None)
            case OfferReceived():
                rt.stats["offers_acknowledged"] += 1
                return Ack(id=msg.id)
            case Ping() | AskFigures() | AskEarnings():
                return await self._tell(msg, me.city, wid)
            case Hello():
                return _error("already_hello", msg.id)
        return None  # location frames never get here: _session takes them on its hot path

    async def _tell(
        self, msg: Ping | AskFigures | AskEarnings, city: str, wid: WorkerId
    ) -> msgspec.Struct:
        """The answer to a question that changes nothing: the clock, figures, earnings."""
        rt = self.rt
        match msg:
            case AskFigures():
                found, last = await rt.performance.figures(city, wid, rt.settings.min_samples)
                return Figures(id=msg.id, performance=found, last_job_at=last)
            case AskEarnings():
                report = await rt.earnings.report(city, wid)
                return msgspec.structs.replace(report, id=msg.id)
        return Ack(id=msg.id, server_time=rt.store.now_ms())


# What the hub's kinds of message are as frames (for the frame counters).
_HUB_FRAMES = {"withdrawn": "offer_withdrawn", "cancelled": "job_cancelled", "job": "job_updated",
               "begun": "reminder", "blocked": "hold"}  # fmt: skip
_EXPIRED = '"reason":"expired"'  # in an offer_withdrawn frame, as the scripts encode it


@functools.cache
def _tag(kind: type[msgspec.Struct]) -> str:
    """A message's ``type`` in the protocol."""
    return str(kind.__struct_config__.tag)


def _order_named(msg: WorkerMessage) -> str:
    """The order a frame is about, for the log lines it causes ("" if none)."""
    match msg:
        case AcceptOffer(offer_id=offer) | RejectOffer(offer_id=offer):
            return offer.rpartition("/")[0]
        case ReportProgress(order_id=oid) | CancelJob(order_id=oid):
            return oid
    return ""


def _span(points: list[Fix]) -> tuple[int, int]:
    """The earliest and the latest time of a batch of fixes."""
    times = [p.at for p in points]
    return min(times), max(times)


class WorkerEndpoint:
    """The ASGI app for ``/v1/worker``. A class, not a function, so that
    Starlette's ``WebSocketRoute`` hands it the raw ASGI callables."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await WorkerSession(scope, receive, send, scope["app"].state.runtime).run()
