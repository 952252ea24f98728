"""What each frame a worker sends does, and what a session knows of its worker.

:data:`HANDLERS`, at the foot of this module, maps every message type a worker
sends to the coroutine that carries it out and returns its ``ack`` (or an
``error``): ``status``, ``offer_received``, ``accept``, ``reject``,
``progress``, ``cancel_job``, ``figures``, ``earnings``, ``ping``, and a
second ``hello``. :func:`answer` runs one and turns what it raises into the
protocol's error codes. Two messages take other paths, both written here:

- ``location`` is the server's hottest frame (tens of thousands a second):
  the socket's read loop calls :meth:`Worker.locate` directly, with no
  coroutine, no await and no table lookup. It buffers the newest point for
  the ingest loop, which acks it (if it asked) once the point is stored.
- ``hello`` starts the session. The socket checks its version, token and
  city and closes on failure (:mod:`server.api.worker_socket`);
  :meth:`Worker.start` then routes the worker to this socket in the store and
  builds the ``welcome`` that restores its state, offer and jobs.

The hub's frames for the worker change its set of jobs here too
(:meth:`Worker.delivered`), and when the node's pub/sub connection was made
again :meth:`Worker.resend` sends what the frames lost meanwhile carried.

No dispatch rule lives here (those are the dispatcher's and the core's), and
this module never touches the socket: it answers through the socket's
``send`` and ``reply`` (:class:`Outlet`). It must not import starlette,
websockets or :mod:`server.api.worker_socket`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, Protocol, TypeAlias

import msgspec

from protocol.errors import message
from protocol.messages import (
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
from server.core.errors import ClientError, InvalidFields
from server.core.order_states import TERMINAL
from server.core.worker_states import OFF_DUTY
from server.node.runtime import Runtime
from server.process import auth, logs
from server.store import keys
from server.store.engine import StoreUnavailable
from server.store.keys import OrderId, WorkerId
from server.store.layout import OrderField as F
from server.store.records import job

log = logging.getLogger(__name__)

Reply: TypeAlias = msgspec.Struct | None


def error(code: str, id: str | None = None, text: str | None = None) -> Error:
    """An ``error`` frame with the code's documented message unless ``text`` is given."""
    return Error(code=code, message=text or message(code), id=id)


class Outlet(Protocol):
    """Where a worker's frames go out: its socket's outbox."""

    def send(self, frame: str) -> None: ...

    def reply(self, msg: msgspec.Struct) -> None: ...


class Worker:
    """The worker one socket speaks for: who it is, the jobs it holds, the search index
    its reports move it in. Only this module's handlers change it."""

    def __init__(self, rt: Runtime, me: auth.Identity, session: str, out: Outlet) -> None:
        self.rt = rt
        self.me = me
        self.wid = WorkerId(me.subject)
        self.session = session
        self.out = out
        self.jobs: set[str] = set()
        # The skills whose search index a report moves the worker in: none while it is
        # off duty (offline or paused), which only its own status frames change, so it
        # cannot be in the index then.
        self.index_skills: tuple[str, ...] = ()
        s = rt.settings
        self._ahead_ms = s.fix_max_ahead_s * 1000
        self._behind_ms = s.fix_max_behind_s * 1000
        self._last_report = -(1 << 62)  # ms; none yet in this session
        self._silence_ms = s.location_max_age_s * 1000 / 2  # well inside forget_stale's

    # ------------------------------------------------------------ session

    async def start(self, hello_id: str | None, version: int) -> Welcome:
        """Route the worker to this socket (the newest session wins) and build the
        ``welcome`` that restores its state, offer and jobs. Raises ``ClientError``
        ``worker_blocked`` if an operator blocked the worker."""
        me, rt = self.me, self.rt
        record = await rt.store.connect(
            me.city, self.wid, rt.node, self.session, me.skills, me.capacity,
            rt.settings.retention_s * 1000,
        )  # fmt: skip
        self.jobs = set(record.jobs)
        self.index_skills = () if record.state in OFF_DUTY else me.skills
        offer = (
            msgspec.json.decode(record.offer_frame, type=OfferMade) if record.offer_frame else None
        )
        orders = await rt.store.jobs([*record.jobs, *record.booked])
        jobs = [job(fields) for fields in orders if fields[F.ID] in self.jobs]
        booked = [job(fields) for fields in orders if fields[F.ID] not in self.jobs]
        return Welcome(
            version=version, worker_id=me.subject, city=me.city,
            state=WorkerState(record.state), node=rt.node, offer=offer, jobs=jobs, id=hello_id,
            paused_until=record.paused_until, booked=booked,
        )  # fmt: skip

    async def leave(self) -> None:
        """Unroute the worker from this socket, unless a newer session holds it; its offer
        and jobs stay."""
        await self.rt.store.disconnect(self.me.city, self.wid, self.rt.node, self.session)

    def delivered(self, kind: str, order_id: str) -> None:
        """The hub sends the worker a frame of ``kind``: a cancelled job is no longer one of
        its jobs, a booked one that has ``begun`` is one now."""
        if kind == "cancelled":
            self.jobs.discard(order_id)
        elif kind == "begun":
            self.jobs.add(order_id)

    async def resend(self) -> None:
        """Send again what frames lost in a pub/sub gap carried: the pending offer (the same
        frame), and ``job_cancelled`` for each job cancelled meanwhile."""
        rt = self.rt
        record = await rt.store.worker_record(self.me.city, self.wid)
        if record.offer_frame:
            rt.figures.frames_out["offer"] += 1
            self.out.send(record.offer_frame)
        gone = [OrderId(oid) for oid in self.jobs - set(record.jobs)]
        self.jobs = set(record.jobs)
        for fields in await rt.store.jobs(gone):
            if fields.get(F.STATE) == OrderState.CANCELLED:
                self.out.reply(JobCancelled(order_id=fields[F.ID]))

    # ------------------------------------------------------------ location

    def locate(self, msg: LocationReported) -> None:
        """Buffer the newest point for the ingest loop; ack (if asked) once it is stored.
        The hot path: the socket calls this for every report, so it awaits nothing."""
        me = self.me
        now = self.rt.store.now_ms()
        points = msg.points
        last = points[-1]
        earliest, latest = (last.at, last.at) if len(points) == 1 else _span(points)
        if latest > now + self._ahead_ms or earliest < now - self._behind_ms:
            self.out.reply(error("bad_fix_time", msg.id))
            return
        # The first report of this session, or one after a silence the store may have
        # taken for departure (forget_stale): the worker may have to enter the index.
        first = now - self._last_report > self._silence_ms
        self._last_report = now
        written = partial(self._written, msg.id) if msg.id else None
        self.rt.ingest.report(
            me.city,
            me.subject,
            self.index_skills,
            (last.lng, last.lat, last.at),
            self.jobs,
            first,
            written,
        )

    def _written(self, id: str, ok: bool) -> None:
        self.out.reply(Ack(id=id) if ok else error("unavailable", id))


def _span(points: list[Fix]) -> tuple[int, int]:
    """The earliest and the latest time of a batch of fixes."""
    times = [p.at for p in points]
    return min(times), max(times)


# ---------------------------------------------------------------- the other messages


async def answer(w: Worker, msg: WorkerMessage) -> None:
    """Carry out ``msg`` and reply: its handler's ``ack``, or the ``error`` it raised (a
    client's fault by its code, a lost store as ``unavailable``, anything else logged and
    ``internal``). Either way the frame is answered once."""
    with logs.about_order(_order_named(msg)):
        try:
            reply = await HANDLERS[type(msg)](w, msg)
        except ClientError as exc:
            errors = exc.errors if isinstance(exc, InvalidFields) and exc.errors else None
            reply = Error(code=exc.code, message=exc.message, id=msg.id, errors=errors)
        except StoreUnavailable:
            reply = error("unavailable", msg.id)
        except Exception:
            log.exception("worker %s: %s failed", w.me.subject, type(msg).__name__)
            reply = error("internal", msg.id)
        if reply is not None:
            w.out.reply(reply)


def _order_named(msg: WorkerMessage) -> str:
    """The order a frame is about, for the log lines it causes ("" if none)."""
    match msg:
        case AcceptOffer(offer_id=offer) | RejectOffer(offer_id=offer):
            return offer.rpartition("/")[0]
        case ReportProgress(order_id=oid) | CancelJob(order_id=oid):
            return oid
    return ""


async def change_status(w: Worker, msg: ChangeStatus) -> Reply:
    """Start or end a shift, or pause (the store's worker machine says whether it may); off
    duty, the worker's reports no longer move it in the search index."""
    state = await w.rt.dispatcher.set_status(w.wid, w.me.city, msg.status)
    w.index_skills = () if state in OFF_DUTY else w.me.skills
    return Ack(id=msg.id, state=WorkerState(state))


async def offer_received(w: Worker, msg: OfferReceived) -> Reply:
    """The offer reached the phone: counted, nothing changes."""
    w.rt.stats["offers_acknowledged"] += 1
    return Ack(id=msg.id)


async def accept_offer(w: Worker, msg: AcceptOffer) -> Reply:
    """Take the order behind the offer (the dispatcher, or an error saying who came first);
    it is one of the worker's jobs from now on."""
    acc = await w.rt.dispatcher.accept(w.wid, w.me.city, msg.offer_id)
    w.jobs.add(msg.offer_id.rpartition("/")[0])
    return Ack(id=msg.id, state=WorkerState(acc.worker_state), job=acc.job, server_time=acc.now)


async def reject_offer(w: Worker, msg: RejectOffer) -> Reply:
    """Decline the offer: the dispatcher ends it, records the reason in the order's history
    and, if the order still waits for a worker, offers it to the next candidate."""
    state = await w.rt.dispatcher.reject(w.wid, w.me.city, msg.offer_id, msg.reason)
    return Ack(id=msg.id, state=WorkerState(state))


async def report_progress(w: Worker, msg: ReportProgress) -> Reply:
    """The worker did its job's pending step (the order's workflow decides which it may
    do); a job that ended with it is no longer one of the worker's jobs."""
    done = await w.rt.dispatcher.progress(w.wid, w.me.city, msg.order_id, msg.step, msg.data)
    if OrderState(done.order_state) in TERMINAL:
        w.jobs.discard(msg.order_id)
    return Ack(id=msg.id, state=WorkerState(done.worker_state), job=done.job)


async def cancel_job(w: Worker, msg: CancelJob) -> Reply:
    """The worker hands a job back (the overrides decide what becomes of the order)."""
    oid = OrderId(msg.order_id)
    if keys.city_of(oid) != w.me.city:
        return error("job_not_found", msg.id)
    state = await w.rt.overrides.hand_back(oid, w.wid, msg.reason)
    w.jobs.discard(oid)
    return Ack(id=msg.id, state=WorkerState(state) if state else None)


async def ask_figures(w: Worker, msg: AskFigures) -> Reply:
    """The worker's own performance figures; nothing changes."""
    rt = w.rt
    found, last = await rt.performance.figures(w.me.city, w.wid, rt.settings.min_samples)
    return Figures(id=msg.id, performance=found, last_job_at=last)


async def ask_earnings(w: Worker, msg: AskEarnings) -> Reply:
    """What the worker earned; nothing changes."""
    report = await w.rt.earnings.report(w.me.city, w.wid)
    return msgspec.structs.replace(report, id=msg.id)


async def ping(w: Worker, msg: Ping) -> Reply:
    """Keep-alive, answered with the server's clock; nothing changes."""
    return Ack(id=msg.id, server_time=w.rt.store.now_ms())


async def hello_again(w: Worker, msg: Hello) -> Reply:
    """A second ``hello`` on a started session changes nothing."""
    return error("already_hello", msg.id)


# Each handler takes its own message type; the table's value type cannot say that
# pairing, so it takes Any (tests/api/test_worker_handlers.py checks every pair).
Handler: TypeAlias = Callable[[Worker, Any], Awaitable[Reply]]

HANDLERS: Final[Mapping[type[msgspec.Struct], Handler]] = {
    ChangeStatus: change_status,  # status
    OfferReceived: offer_received,  # offer_received
    AcceptOffer: accept_offer,  # accept
    RejectOffer: reject_offer,  # reject
    ReportProgress: report_progress,  # progress
    CancelJob: cancel_job,  # cancel_job
    AskFigures: ask_figures,  # figures
    AskEarnings: ask_earnings,  # earnings
    Ping: ping,  # ping
    Hello: hello_again,  # hello, once the session has started
}
"""What answers each message a worker sends, but ``location`` (:meth:`Worker.locate`)."""
