"""A simulated worker against a scripted fake server: the frames it sends, in order.

The fake server speaks the real protocol (``protocol.codec``) over a real
WebSocket on 127.0.0.1; no dispatch server or Redis is needed. It checks that
a worker says ``hello`` first, reports its location before going available,
acknowledges an offer at once, accepts it, reports the service steps in
order, and after a dropped connection resumes the job the ``welcome`` hands back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol import codec
from protocol.messages import (
    AcceptOffer,
    Ack,
    ChangeStatus,
    Hello,
    Job,
    JobUpdated,
    LocationReported,
    OfferMade,
    OfferReceived,
    OrderState,
    Point,
    ReportProgress,
    StepField,
    StepInfo,
    WorkerMessage,
    WorkerState,
)
from protocol.messages import Welcome as WelcomeFrame
from simulator.display import Progress
from simulator.procs import run_processes
from simulator.runner import run_slice
from simulator.scenario import SimConfig, parse_scenario, with_overrides
from simulator.stats import Snapshot
from simulator.worker import SimWorker

UNIT_S = 1.0  # scale for slow machines
Script = Callable[["FakeServer", ServerConnection], Awaitable[None]]
PICKUP = Point(lat=52.52, lng=13.40)
ORDER = "metro.0123456789abcdef"
OFFER = f"{ORDER}/1"


def _config(url: str) -> SimConfig:
    """One fast worker, no customers: everything the worker does takes a blink."""
    return parse_scenario(
        {
            "duration_s": 30 * UNIT_S,
            "grace_s": 0,
            "speed_factor": 5_000,
            "url": url,
            "secret": "s" * 32,
            "workers": {
                "count": 1,
                "ramp_s": 0,
                "accept_probability": 1.0,
                "response_delay": {"median_s": 0.02, "sigma": 0.1, "max_s": 0.05},
                "start_delay_s": [0.01, 0.02],
            },
            "orders": {"rate_per_s": 0},
            "skills": {"cleaning": {"service_s": [0.01, 0.02]}},
        }
    )


class FakeServer:
    """Plays a dispatch server for one worker; records every frame it gets."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.frames: list[WorkerMessage] = []
        self.sessions = 0
        self.done = asyncio.Event()
        self.failure: BaseException | None = None
        self.finished = asyncio.Event()

    async def recv(self, ws: ServerConnection) -> WorkerMessage:
        """The next frame from the worker that is not a location report."""
        while True:
            msg = codec.worker_decoder.decode(await ws.recv())
            self.frames.append(msg)
            if not isinstance(msg, LocationReported):
                return msg

    async def handler(self, ws: ServerConnection) -> None:
        self.sessions += 1
        try:
            await self.script(self, ws)
        except Exception as exc:  # an assertion in the script: fail the test, not the socket
            self.failure = exc
            self.done.set()
        finally:
            self.finished.set()


STEPS = {"arrived": OrderState.ARRIVED, "started": OrderState.STARTED}


def _job(state: OrderState, step: str | None = None) -> Job:
    return Job(order_id=ORDER, state=state, skill="cleaning", pickup=PICKUP, step=step)


async def _welcome(server: FakeServer, ws: ServerConnection, jobs: list[Job]) -> None:
    hello = await server.recv(ws)
    assert isinstance(hello, Hello) and hello.versions == [1]
    state = WorkerState.ON_JOB if jobs else WorkerState.OFFLINE
    await ws.send(codec.encode(WelcomeFrame(1, "w", "metro", state, "n1", jobs=jobs)))


async def _serve_steps(server: FakeServer, ws: ServerConnection, steps: list[str]) -> None:
    for n, step in enumerate(steps):
        msg = await server.recv(ws)
        assert isinstance(msg, ReportProgress) and msg.step == step and msg.order_id == ORDER
        after = steps[n + 1] if n + 1 < len(steps) else None  # the ack names the next step
        await ws.send(codec.encode(Ack(id=msg.id, job=_job(STEPS[step], after) if after else None)))
    server.done.set()
    with contextlib.suppress(ConnectionClosed):
        while True:
            await server.recv(ws)


async def _offer_and_job(server: FakeServer, ws: ServerConnection) -> None:
    await _welcome(server, ws, [])
    status = await server.recv(ws)
    assert isinstance(status, ChangeStatus) and status.status == "available"
    assert isinstance(server.frames[-2], LocationReported), "location before going available"
    await ws.send(codec.encode(Ack(id=status.id, state=WorkerState.AVAILABLE)))
    offer = OfferMade(OFFER, ORDER, "cleaning", PICKUP, 250.0, expires_at=2**41, sent_at=1)
    await ws.send(codec.encode(offer))
    received = await server.recv(ws)
    assert isinstance(received, OfferReceived) and received.offer_id == OFFER
    accept = await server.recv(ws)
    assert isinstance(accept, AcceptOffer) and accept.offer_id == OFFER and accept.id
    await ws.send(
        codec.encode(
            Ack(id=accept.id, state=WorkerState.ON_JOB, job=_job(OrderState.ASSIGNED, "arrived"))
        )
    )
    await _serve_steps(server, ws, ["arrived", "started", "completed"])


async def _drop_then_resume(server: FakeServer, ws: ServerConnection) -> None:
    if server.sessions == 1:
        await _welcome(server, ws, [])
        await ws.close()
        return
    await _welcome(server, ws, [_job(OrderState.ARRIVED)])
    await _serve_steps(server, ws, ["started", "completed"])


async def _run_against(fake: FakeServer) -> Snapshot:
    """Run one simulated worker against ``fake`` until its script is done."""
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        stop = asyncio.Event()
        run = run_slice(_config(f"http://127.0.0.1:{port}"), 0, None, stop)
        task = asyncio.create_task(run)
        try:
            await asyncio.wait_for(fake.done.wait(), 10 * UNIT_S)
            if fake.failure is not None:
                raise fake.failure
            stop.set()
            snapshot = await asyncio.wait_for(task, 10 * UNIT_S)
            await asyncio.wait_for(fake.finished.wait(), 10 * UNIT_S)
            return snapshot
        finally:
            task.cancel()


async def test_worker_takes_an_offer_and_reports_every_step() -> None:
    """hello, location, available, offer_received, accept, arrived, started, completed,
    and at the end of the run, offline."""
    fake = FakeServer(_offer_and_job)
    snapshot = await _run_against(fake)
    last = [f for f in fake.frames if not isinstance(f, LocationReported)][-1]
    assert last == ChangeStatus(status="offline")
    c = snapshot.counters
    assert c["offers_received"] == 1 and c["offers_accepted"] == 1
    assert c["steps_completed"] == 1 and snapshot.errors == {}
    assert snapshot.histograms["pickup_distance_m"].max == 250.0


async def test_worker_reconnects_and_resumes_its_job() -> None:
    """After a dropped socket the worker reconnects and finishes the job it holds."""
    fake = FakeServer(_drop_then_resume)
    snapshot = await _run_against(fake)
    assert fake.sessions == 2
    assert snapshot.counters["reconnects"] == 1
    assert snapshot.counters["steps_completed"] == 1


CATEGORY_STEPS = [
    StepInfo(name="picked_up", label="", by="worker"),
    StepInfo(name="confirmed", label="", by="customer", kind="approval"),
    StepInfo(name="delivered", label="", by="worker",
             requires=[StepField(name="photo_url", type="url")]),
]  # fmt: skip


def _category_job(state: OrderState, step: str) -> Job:
    return msgspec.structs.replace(_job(state, step), category="parcel", steps=CATEGORY_STEPS)


async def _category_job_with_an_approval(server: FakeServer, ws: ServerConnection) -> None:
    """A job of a category: the worker does its step, waits while the customer's
    approval is pending, carries on when job_updated says so, with the step's data."""
    await _welcome(server, ws, [_category_job(OrderState.ASSIGNED, "picked_up")])
    first = await server.recv(ws)
    assert isinstance(first, ReportProgress) and first.step == "picked_up"
    await ws.send(
        codec.encode(Ack(id=first.id, job=_category_job(OrderState.STARTED, "confirmed")))
    )
    with contextlib.suppress(TimeoutError):  # nothing but locations: the right answer
        idle = await asyncio.wait_for(server.recv(ws), 0.5)
        assert not isinstance(idle, ReportProgress), "the worker did the customer's step"
    updated = JobUpdated(job=_category_job(OrderState.STARTED, "delivered"), event="confirmed")
    await ws.send(codec.encode(updated))
    last = await server.recv(ws)
    while not isinstance(last, ReportProgress):
        last = await server.recv(ws)
    assert last.step == "delivered" and last.data is not None
    assert str(last.data["photo_url"]).startswith("https://")
    await ws.send(codec.encode(Ack(id=last.id, job=None)))
    server.done.set()
    with contextlib.suppress(ConnectionClosed):
        while True:
            await server.recv(ws)


async def test_worker_walks_a_categorys_steps_and_waits_for_the_customer() -> None:
    """picked_up, then nothing while the approval is the customer's, then delivered."""
    fake = FakeServer(_category_job_with_an_approval)
    snapshot = await _run_against(fake)
    c = snapshot.counters
    assert c["steps_picked_up"] == 1 and c["steps_delivered"] == 1 and c["jobs_updated"] == 1
    assert "steps_confirmed" not in c and snapshot.errors == {}


async def _idle(server: FakeServer, ws: ServerConnection) -> None:
    """Welcome a worker, acknowledge what it asks, until it leaves."""
    await _welcome(server, ws, [])
    with contextlib.suppress(ConnectionClosed):
        while True:
            msg = await server.recv(ws)
            if isinstance(msg, ChangeStatus):
                await ws.send(codec.encode(Ack(id=msg.id, state=WorkerState.AVAILABLE)))


async def test_two_processes_merge_their_measurements() -> None:
    """With procs = 2 each process runs its share and the parent adds them up."""
    fake = FakeServer(_idle)
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        config = with_overrides(
            _config(f"http://127.0.0.1:{port}"),
            {"procs": 2, "workers.count": 3, "duration_s": 1.0, "workers.report_interval_s": 0.2},
        )
        seen: list[Progress] = []
        snapshot = await asyncio.wait_for(
            asyncio.to_thread(run_processes, config, seen.append), 30 * UNIT_S
        )
    assert fake.sessions == 3
    assert snapshot.counters["connects"] == 3
    assert snapshot.counters["location_reports"] >= 3
    assert snapshot.errors == {}
    assert seen and seen[-1].workers == 3


async def _welcome_then_vanish(server: FakeServer, ws: ServerConnection) -> None:
    """A node that dies right after welcoming the worker: no close frame, three times over."""
    await _welcome(server, ws, [])
    if server.sessions >= 4:
        server.done.set()
        await _idle(server, ws)
        return
    ws.transport.abort()


async def test_backoff_starts_over_after_a_welcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose sessions keep dying after a welcome waits the first backoff step each
    time: the backoff grows only over attempts that never got a session."""
    attempts: list[int] = []

    def backoff(self: SimWorker, attempt: int) -> float:
        attempts.append(attempt)
        return 0.01

    monkeypatch.setattr(SimWorker, "_backoff", backoff)
    fake = FakeServer(_welcome_then_vanish)
    await _run_against(fake)
    assert fake.sessions >= 4
    assert attempts[:3] == [1, 1, 1]
