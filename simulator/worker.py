"""One simulated worker app: a WebSocket session, offers, jobs, shifts, reconnects.

Each worker has one long-lived task, :meth:`SimWorker.run`, that connects,
says ``hello``, then reads frames until the socket drops, and reconnects with
jittered exponential backoff (``reconnects`` counts those). Everything timed
(location reports, answering an offer after a human delay, arriving, finishing
a job, shift changes) goes through the shared :class:`~simulator.scheduler.Scheduler`,
never a sleeping task per timer. Job steps carry an ``epoch`` so that steps
planned before a reconnect are dropped once the job is re-planned from the
server's ``welcome``.

The worker walks its job's steps (:mod:`simulator.jobs`): the first when it
reaches the pickup intersection, the ones between after a short start
delay, the last after the service time on site or, for a job with a
drop-off, after driving there and handing over; each with the data it
requires. The server's ack names the next pending step; a step that is the
customer's (an approval) is left to the customer, who is asked through the
world (``World.decide``), and the worker carries on when ``job_updated``
says so. It is on shift unless it has a reason to be off (``shift``, ``outage``);
going offline waits until its offer and job are done, as the server requires.

Its behaviour (the scenario's ``workers.behaviours``) sets how often it
accepts, how slowly it answers and how often it hands a job back after
accepting it; its customers rate its completed jobs by it. It counts its own
figures (``wk.<worker>.<figure>``: offers, accepted, rejected, handed back,
jobs completed, ms busy and ms present) for the report's fleet section.

Imports ``protocol`` (never ``server``) and ``simulator`` modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from dataclasses import dataclass

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from protocol import codec
from protocol.messages import (
    AcceptOffer,
    Ack,
    CancelJob,
    ChangeStatus,
    Error,
    Fix,
    Hello,
    Hold,
    Job,
    JobCancelled,
    JobUpdated,
    LocationReported,
    OfferMade,
    OfferReceived,
    OfferWithdrawn,
    RejectOffer,
    ReportProgress,
    ServerMessage,
    Welcome,
)
from simulator.fleet import WorkerProfile, World, response_delay, span
from simulator.jobs import ActiveJob, job_from, step_data
from simulator.journal import now_ms
from simulator.movement import Mover
from simulator.scenario import Behaviour

log = logging.getLogger(__name__)

# A socket holding more unsent bytes than this is congested: location reports are skipped.
_CONGESTED_BYTES = 64 * 1024
_HELLO_TIMEOUT_S = 10.0


class SessionRefused(Exception):
    """The server answered ``hello`` with an error (its code is the message)."""


@dataclass(slots=True)
class Pending:
    """A sent message waiting for its ``ack`` or ``error``."""

    kind: str
    ref: str
    step: str = ""


class SimWorker:
    """A fake worker app driven by its profile and the scenario."""

    def __init__(self, world: World, profile: WorkerProfile) -> None:
        self.world = world
        self.profile = profile
        self.rng = random.Random(profile.seed)
        self.mover = Mover(world.grid, profile.start, world.scheduler.now(), self.rng)
        self.ws: ClientConnection | None = None
        self.welcomed = False  # whether the current session got its welcome
        self.node_index = profile.number  # which of the server nodes to connect to
        self.lost_at: int | None = None  # when the last session was lost (ms)
        self.node = ""  # the server node of the current (or last) session
        self.offer: OfferMade | None = None
        self.job: ActiveJob | None = None
        self.off_reasons: set[str] = set()
        self.status = "offline"  # what the server last agreed to
        self.pending: dict[str, Pending] = {}
        self._ids = itertools.count(1)
        self._next_report = 0.0
        self.behaviour = world.config.workers.behaviours.get(profile.behaviour, Behaviour())
        self.joined: float | None = None  # its first welcome (scheduler time)
        self.busy_since: float | None = None  # since when it holds a job
        self._tally(f"kind.{profile.behaviour}")
        if profile.late:
            self._tally("late")

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        """Stay connected until the run stops, reconnecting with backoff. With several
        server nodes, a worker that cannot reach its node tries the next one."""
        attempt = 0
        while not self.world.stopping:
            self.welcomed = False
            try:
                await self._connect_once()
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                log.debug("%s: connect failed: %r", self.profile.worker_id, exc)
                self.world.metrics.error("connect_failed")
                self.node_index += 1
            except SessionRefused as exc:
                self.world.metrics.error(str(exc))
            except ConnectionClosed:
                if not self.world.stopping:
                    self.world.metrics.error("connection_lost")
            except Exception:  # a bug here must not silently retire the worker
                log.exception("%s: session failed", self.profile.worker_id)
                self.world.metrics.error("sim_internal")
            if self.world.stopping:
                return
            if self.welcomed:  # a session was made: the backoff starts over
                attempt = 0
                self.lost_at = now_ms()
                if self.world.journal is not None:
                    self.world.journal.lost(self.profile.worker_id, self.lost_at, self.node)
            attempt += 1
            self.world.metrics.count("reconnects")
            await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [base/2, min(max, base * 2^attempt)]."""
        w = self.world.config.workers
        high = min(w.reconnect_max_s, w.reconnect_base_s * 2 ** min(attempt, 16))
        return self.rng.uniform(w.reconnect_base_s / 2, max(high, w.reconnect_base_s / 2))

    async def _connect_once(self) -> None:
        """One session: handshake, ``hello``, then read frames until the socket closes."""
        bases = self.world.ws_bases
        url = f"{bases[self.node_index % len(bases)]}/v1/worker"
        headers = {"Authorization": f"Bearer {self.profile.token}"}
        async with connect(
            url,
            additional_headers=headers,
            compression=None,
            ping_interval=None,
            open_timeout=30,
            proxy=None,
        ) as ws:
            await ws.send(codec.encode(Hello(versions=[1], app="simulator")).decode())
            first = codec.server_decoder.decode(await asyncio.wait_for(ws.recv(), _HELLO_TIMEOUT_S))
            if isinstance(first, Error):
                raise SessionRefused(first.code)
            if not isinstance(first, Welcome):
                raise SessionRefused("unexpected_first_frame")
            self.world.metrics.count("connects")
            self.welcomed = True
            self.node = first.node
            if self.lost_at is not None and self.world.journal is not None:
                self.world.journal.back(self.profile.worker_id, self.lost_at, first.node)
            self.lost_at = None
            self.world.metrics.connected += 1
            self.ws = ws
            try:
                await self._on_welcome(first)
                async for raw in ws:
                    try:
                        msg = codec.server_decoder.decode(raw)
                    except msgspec.DecodeError:
                        self.world.metrics.error("bad_server_frame")
                        continue
                    await self._handle(msg)
            finally:
                self.ws = None
                self.world.metrics.connected -= 1

    async def close(self) -> None:
        """End the shift and close the socket (the run is ending). A worker without an offer
        or a job says ``offline`` first, so the server stops counting it as available."""
        ws = self.ws
        if ws is None:
            return
        if self.job is None and self.offer is None and self.status != "offline":
            await self._send(ChangeStatus(status="offline"))
        await ws.close()

    async def _send(self, message: object, kind: str = "", ref: str = "", step: str = "") -> None:
        """Send one frame; with ``kind`` it carries an id and its ack is matched later."""
        ws = self.ws
        if ws is None:
            return
        if kind:
            msg_id = f"{kind[0]}{next(self._ids)}"
            self.pending[msg_id] = Pending(kind, ref, step)
            message = _with_id(message, msg_id)
        with contextlib.suppress(ConnectionClosed):  # the reading side notices and reconnects
            await ws.send(codec.encode(message).decode())

    # ------------------------------------------------------------ incoming frames

    def _tally(self, figure: str, by: int = 1) -> None:
        """Count one of this worker's own figures, for the report's fleet section."""
        self.world.metrics.count(f"wk.{self.profile.worker_id}.{figure}", by)

    def account(self) -> None:
        """The run ends: count the time it was present and busy until now."""
        now = self.world.scheduler.now()
        self._busy_until(now)
        if self.joined is not None:
            self._tally("present_ms", round((now - self.joined) * 1000))

    def _busy_until(self, now: float) -> None:
        if self.busy_since is not None:
            self._tally("busy_ms", round((now - self.busy_since) * 1000))
            self.busy_since = None

    async def _on_welcome(self, welcome: Welcome) -> None:
        """Pick up where the server says we are: status, held offer, active job."""
        if self.joined is None:
            self.joined = self.world.scheduler.now()
        self.status = "offline" if welcome.state in ("offline", "paused") else "available"
        self.pending.clear()
        self.offer = None
        if welcome.jobs:
            self._take_job(welcome.jobs[0], distance=None)
        elif self.job is not None:
            self.job = None  # the job ended while we were away
        if welcome.offer is not None:
            await self._on_offer(welcome.offer)
        if self._next_report == 0.0:
            self._start_reporting()
        await self._report_now()
        await self.sync_status()

    async def _handle(self, msg: ServerMessage) -> None:
        """Dispatch one frame from the server."""
        if isinstance(msg, OfferMade):
            await self._on_offer(msg)
        elif isinstance(msg, Ack):
            self._on_ack(msg)
        elif isinstance(msg, Error):
            await self._on_error(msg)
        elif isinstance(msg, OfferWithdrawn):
            self.world.metrics.count(f"offers_withdrawn_{msg.reason}")
            if self.offer is not None and self.offer.offer_id == msg.offer_id:
                self.offer = None
                await self.sync_status()
        elif isinstance(msg, JobCancelled):
            self.world.metrics.count("jobs_cancelled")
            if self.job is not None and self.job.order_id == msg.order_id:
                await self._end_job()
        elif isinstance(msg, JobUpdated):
            self.world.metrics.count("jobs_updated")
            self.world.book.update(msg.job.order_id, msg.job.state)
            job = self.job
            if job is not None and job.order_id == msg.job.order_id:
                job.moved_on(msg.job)
                self._after_step(job)
        elif isinstance(msg, Hold):
            self.world.metrics.count(f"holds_{msg.hold}")

    async def _on_offer(self, offer: OfferMade) -> None:
        """Acknowledge at once, then answer after a human delay."""
        now_ms = time.time() * 1000.0
        m = self.world.metrics
        m.count("offers_received")
        self._tally("offers")
        m.record("offer_delivery_ms", now_ms - offer.sent_at)
        self.world.book.offer_received(offer.order_id, now_ms)
        await self._send(OfferReceived(offer_id=offer.offer_id))
        self.offer = offer
        chance = self.behaviour.accept_probability
        if chance is None:
            chance = self.world.config.workers.accept_probability
        accept = not self.off_reasons and self.rng.random() < chance
        delay = response_delay(self.world.config, self.rng, self.behaviour.response_factor)
        self.world.scheduler.call_later(delay, lambda: self._answer(offer, accept))

    async def _answer(self, offer: OfferMade, accept: bool) -> None:
        if self.offer is not offer or self.ws is None:
            return  # withdrawn, or the socket dropped meanwhile
        if accept:
            self.world.metrics.count("accepts_sent")
            await self._send(AcceptOffer(offer_id=offer.offer_id), "accept", offer.offer_id)
        else:
            self.world.metrics.count("rejects_sent")
            self._tally("rejected")
            self.offer = None
            await self._send(RejectOffer(offer_id=offer.offer_id, reason="busy"))
            await self.sync_status()

    def _on_ack(self, ack: Ack) -> None:
        pending = self.pending.pop(ack.id, None) if ack.id else None
        if pending is None:
            return
        if pending.kind == "accept" and ack.job is not None:
            distance = self.offer.distance_m if self.offer is not None else None
            self.world.metrics.count("offers_accepted")
            at = ack.server_time if ack.server_time is not None else time.time() * 1000.0
            self.world.book.assigned(ack.job.order_id, at, exact=False)
            self.offer = None
            self._tally("accepted")
            self._take_job(ack.job, distance)
            if self.rng.random() < self.behaviour.hand_back_share:
                delay = response_delay(self.world.config, self.rng, self.behaviour.response_factor)
                oid = ack.job.order_id
                self.world.scheduler.call_later(delay, lambda: self._hand_back(oid))
        elif pending.kind == "cancel_job":
            self.world.metrics.count("jobs_handed_back")
            self._tally("handed_back")
            self.world.scheduler.call_later(0.0, self._end_job)
        elif pending.kind == "progress":
            job = self.job
            self.world.book.update(pending.ref, ack.job.state if ack.job else "completed")
            if job is not None and job.order_id == pending.ref and job.step == pending.step:
                job.moved_on(ack.job)
                self._after_step(job)
        elif pending.kind == "status" and ack.state is not None:
            self.status = "offline" if ack.state in ("offline", "paused") else "available"

    async def _on_error(self, error: Error) -> None:
        pending = self.pending.pop(error.id, None) if error.id else None
        if pending is not None and pending.kind == "cancel_job" and error.code == "not_cancellable":
            self.world.metrics.count("hand_backs_refused")  # too late: it carries on
        else:
            self.world.metrics.error(error.code)
        if pending is None:
            return
        if pending.kind == "accept" and self.offer is not None:
            self.offer = None
            await self.sync_status()
        elif (
            pending.kind == "progress" and self.job is not None and self.job.order_id == pending.ref
        ):
            await self._end_job()
        elif pending.kind == "status":
            self.status = "unknown"  # retried when the offer or job is done
        elif pending.kind == "cancel_job":
            self._plan()  # past its point of no return: it carries on after all

    # ------------------------------------------------------------ jobs

    def _take_job(self, job: Job, distance: float | None) -> None:
        if distance is not None:
            self.world.metrics.record("pickup_distance_m", distance)
        self.job = job_from(job, self.world.grid)
        if self.busy_since is None:
            self.busy_since = self.world.scheduler.now()
        self._plan()

    async def _hand_back(self, order_id: str) -> None:
        """Hand the job back (its behaviour's share of them), if it still has it."""
        if self.job is None or self.job.order_id != order_id or self.ws is None:
            return
        self.job.epoch += 1  # its planned steps are void
        await self._send(CancelJob(order_id=order_id, reason="changed my mind"), "cancel_job",
                         order_id)  # fmt: skip

    def _plan(self) -> None:
        """Schedule the current job's pending step, when it is the worker's; ask the
        customer to decide one of theirs."""
        job = self.job
        if job is None or job.step is None:
            return
        job.epoch += 1
        pending = job.pending
        if job.waiting:
            if pending is not None and pending.by == "customer" and self.world.decide:
                self.world.decide(job.order_id, pending.name)
            return
        epoch, now = job.epoch, self.world.scheduler.now()
        delay = job.next_delay(self.mover, self.world, self.rng, self.profile.speed_mps, now)
        self.world.scheduler.call_at(now + delay, lambda: self._step(job, epoch))

    async def _step(self, job: ActiveJob, epoch: int) -> None:
        """Do the pending step; the ack names the next one (:meth:`_after_step`)."""
        if self.job is not job or job.epoch != epoch or self.ws is None:
            return  # superseded, or re-planned when the socket is back
        pending = job.pending
        if pending is None:
            return
        self.mover.stop_at_target(self.world.scheduler.now())
        self.world.metrics.count(f"steps_{pending.name}")
        record = self.world.book.orders.get(job.order_id)
        data = step_data(pending, job.order_id, record.code if record else None)
        message = ReportProgress(order_id=job.order_id, step=pending.name, data=data or None)
        await self._send(message, "progress", job.order_id, pending.name)

    def _after_step(self, job: ActiveJob) -> None:
        """A step of the job was done (by the worker, or someone else): the next, or the end."""
        if job.step is None:
            self._tally("jobs")
            if self.world.completed is not None:
                self.world.completed(job.order_id, round(span(self.rng, self.behaviour.stars)))
            self.world.scheduler.call_later(0.0, self._end_job)
        else:
            self._plan()

    async def _end_job(self) -> None:
        self._busy_until(self.world.scheduler.now())
        self.job = None
        self.mover.target = None  # roam from here
        await self.sync_status()

    # ------------------------------------------------------------ shifts and location

    async def go_off(self, reason: str) -> None:
        """Stop taking offers for ``reason``; offline as soon as the offer and job allow."""
        self.world.metrics.count(f"off_{reason}")
        self.off_reasons.add(reason)
        await self.sync_status()

    async def go_on(self, reason: str) -> None:
        """``reason`` to be off is over; available again if no other reason remains."""
        self.off_reasons.discard(reason)
        if not self.off_reasons:
            await self._report_now()  # the server needs a fresh location to offer anything
        await self.sync_status()

    async def sync_status(self) -> None:
        """Ask the server for the status the worker wants, when the server would allow it."""
        want = "offline" if self.off_reasons else "available"
        if self.ws is None or want == self.status or self.offer is not None:
            return
        if want == "offline" and self.job is not None:
            return
        self.status = want
        await self._send(ChangeStatus(status=want), "status", want)  # type: ignore[arg-type]

    def _start_reporting(self) -> None:
        """First report at a random point of the interval, so reports spread evenly."""
        interval = self.world.config.workers.report_interval_s
        self._next_report = self.world.scheduler.now() + self.rng.uniform(0, interval)
        self.world.scheduler.call_at(self._next_report, self._report_tick)

    async def _report_tick(self) -> None:
        self._next_report += self.world.config.workers.report_interval_s
        if not self.world.stopping:
            self.world.scheduler.call_at(self._next_report, self._report_tick)
        if self.ws is not None and (not self.off_reasons or self.job is not None):
            await self._report_now()

    async def _report_now(self) -> None:
        ws = self.ws
        if ws is None:
            return
        now = self.world.scheduler.now()
        self.mover.advance_to(now)
        if self.job is None and self.mover.arrived:
            self._roam(now)
        if ws.transport.get_write_buffer_size() > _CONGESTED_BYTES:
            self.world.metrics.count("location_skipped")
            return
        lat, lng = self.mover.latlng()
        speed = self.mover.speed if not self.mover.arrived else 0.0
        fix = Fix(lat=lat, lng=lng, at=int(time.time() * 1000), accuracy=5.0, speed=speed)
        self.world.metrics.count("location_reports")
        await self._send(LocationReported(points=[fix]))

    def _roam(self, now: float) -> None:
        w = self.world.config.workers
        radius = max(1, round(w.roam_radius_m / self.world.grid.block_m))
        target = self.world.grid.near(self.mover.node, radius, self.rng)
        self.mover.head_to(target, self.profile.speed_mps * w.roam_speed_factor, now)


def _with_id(message: object, msg_id: str) -> object:
    """The same frame with its ``id`` set (frames are frozen structs)."""
    return msgspec.structs.replace(message, id=msg_id)  # type: ignore[type-var]
