"""Locust load test: worker apps over WebSocket and customers over HTTP.

``WorkerUser`` holds a worker socket (``websocket-client``, which gevent
patches like every socket under locust): ``hello`` → ``welcome``, ``status``
→ ``ack``, then a location report every second (one in ``LOADTEST_ACK_EVERY``
asks for an ``ack``), and every offer is accepted at once and the job run to
``completed``. ``CustomerUser`` creates orders over HTTP, follows each on its
live socket until a worker is assigned, reads it back, and sometimes cancels.

Each exchange is a locust request of type ``WS`` (the HTTP ones are locust's
own), named after what is measured:

=============  ==============================================================
``connect``    WebSocket handshake
``hello``      ``hello`` → ``welcome``
``status``     ``status`` → ``ack``
``location``   ``location`` with an ``id`` → ``ack`` (written to Redis)
``offer``      the offer's ``sent_at`` (server clock) → frame read here; same
               machine only, otherwise it includes the clocks' offset
``accept``     ``accept`` → ``ack`` with the job
``progress``   ``progress`` → ``ack`` (arrived, started, completed)
``X (code)``   exchange ``X`` answered with an ``error`` that means a lost race
               (e.g. ``accept (order_cancelled)``): counted, not a failure
``assigned``   ``POST /v1/orders`` sent → ``assigned`` seen on the live socket
=============  ==============================================================

Configuration (environment): ``DISPATCH_JWT_SECRET`` (the server's; the
default is the server's development default), ``LOADTEST_CITY`` (default: the
first city the server serves, asked of ``GET /v1/admin/cities``),
``LOADTEST_CUSTOMERS_PER_USER`` (default 8), ``LOADTEST_ACK_EVERY`` (default
5), ``LOADTEST_CANCEL_SHARE`` (default 0.1). The target is locust's
``--host``. See ``loadtest/README.md``.

A customer user orders as several customers in turn, so that each stays
within the server's default per-customer order rate (``order_rate_per_s`` 1,
bursts of ``order_burst`` 20): a user orders at most 5 times a second, so
8 customers order at most 0.63 times a second each. A load test thus needs
no server setting but the JWT secret.

Imports ``protocol`` and ``loadtest`` only, never ``server``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import random
import time
import urllib.request
import uuid
from typing import Any, Literal

import msgspec
import websocket
from locust import FastHttpUser, User, between, constant, task

from loadtest.tokens import admin_token, customer_token, worker_token
from protocol import codec
from protocol.messages import (
    AcceptOffer,
    Ack,
    ChangeStatus,
    CreateOrder,
    Error,
    EventHappened,
    Fix,
    Hello,
    LocationReported,
    OfferMade,
    Point,
    ReportProgress,
    ServerMessage,
    Snapshot,
    Welcome,
)

SECRET = os.environ.get("DISPATCH_JWT_SECRET", "dev-only-secret-change-me-in-production")
CITY = os.environ.get("LOADTEST_CITY", "")  # empty: the server's first city
FALLBACK_CITY = "metro"  # a default server's, should the server not say
CUSTOMERS_PER_USER = int(os.environ.get("LOADTEST_CUSTOMERS_PER_USER", "8"))
ACK_EVERY = int(os.environ.get("LOADTEST_ACK_EVERY", "5"))
CANCEL_SHARE = float(os.environ.get("LOADTEST_CANCEL_SHARE", "0.1"))
CENTRE = (52.52, 13.40)
REPORT_EVERY_S = 1.0
FIRST_ORDER_AFTER_S = (0.5, 1.0)
TIMEOUT_S = 10.0
ASSIGNED = {"assigned", "arrived", "started", "completed"}
TERMINAL = {"completed", "cancelled", "unassigned"}
# Answers that mean the worker lost a race (to the customer's cancel, the offer's
# timeout, another worker): correct behaviour of the server, not failures.
RACES = {"order_cancelled", "offer_expired", "offer_taken", "job_not_found"}
STEPS: tuple[Literal["arrived", "started", "completed"], ...] = ("arrived", "started", "completed")


class ExchangeFailed(Exception):
    """A reply was an ``error`` frame, or not the expected kind."""


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def near_centre(spread: float) -> tuple[float, float]:
    return (
        CENTRE[0] + random.uniform(-spread, spread),
        CENTRE[1] + random.uniform(-spread, spread) * 1.5,
    )


def ws_base(host: str) -> str:
    return "ws" + host.removeprefix("http").rstrip("/")


@functools.cache
def city_at(host: str) -> str:
    """``LOADTEST_CITY``, else the first city the server at ``host`` serves (asked with
    an admin token), else :data:`FALLBACK_CITY`."""
    if CITY:
        return CITY
    token = admin_token(SECRET, "locust")
    ask = urllib.request.Request(f"{host.rstrip('/')}/v1/admin/cities",
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(ask, timeout=TIMEOUT_S) as reply:
            return codec.cities_decoder.decode(reply.read()).cities[0]
    except (OSError, msgspec.DecodeError, IndexError):
        return FALLBACK_CITY


class WorkerUser(User):
    """A worker app: reports its position, takes every offer, finishes the job at once."""

    weight = 3
    wait_time = constant(0)

    def on_start(self) -> None:
        self.wid = f"lw-{uuid.uuid4().hex[:10]}"
        self.lat, self.lng = near_centre(0.01)
        self.ids = itertools.count()
        self.inbox: list[ServerMessage] = []
        self.ws: websocket.WebSocket | None = None
        self._connect()

    def on_stop(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.close()
            self.ws = None

    def _fire(self, name: str, started: float, size: int, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=ms_since(started),
            response_length=size, exception=exc, context={},
        )  # fmt: skip

    def _connect(self) -> None:
        token = worker_token(SECRET, self.wid, city_at(self.host or ""))
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(
                f"{ws_base(self.host or '')}/v1/worker",
                header=[f"Authorization: Bearer {token}"], timeout=TIMEOUT_S,
            )  # fmt: skip
        except (OSError, websocket.WebSocketException) as exc:
            self._fire("connect", started, 0, exc)
            return  # ``work`` tries again on its next run
        self._fire("connect", started, 0)
        hello = Hello(versions=[1], id="hello")
        status = ChangeStatus(status="available", id="status")
        if not self.exchange("hello", hello, Welcome) or not self.exchange("status", status):
            self.on_stop()

    def exchange(self, name: str, msg: Any, kind: type[Any] = Ack) -> ServerMessage | None:
        """Send ``msg`` (which has an ``id``) and wait for the reply echoing it: the
        reply, or None if it failed. A lost race (:data:`RACES`) is a fair answer,
        counted as its own request ``<name> (<code>)``."""
        assert self.ws is not None
        started = time.perf_counter()
        try:
            self.ws.send(codec.encode(msg).decode())
            reply = self._until_reply(msg.id, started + TIMEOUT_S)
            if isinstance(reply, Error) and reply.code in RACES:
                name = f"{name} ({reply.code})"
            elif isinstance(reply, Error) or not isinstance(reply, kind):
                raise ExchangeFailed(f"{name}: {reply}")
        except (ExchangeFailed, OSError, websocket.WebSocketException) as exc:
            self._fire(name, started, 0, exc)
            return None
        self._fire(name, started, 1)
        return reply

    def _until_reply(self, rid: str, deadline: float) -> ServerMessage:
        while True:
            msg = self._recv(deadline - time.perf_counter())
            if msg is None:
                raise ExchangeFailed(f"no reply to {rid}")
            if getattr(msg, "id", None) == rid:
                return msg
            self.inbox.append(msg)

    def _recv(self, timeout: float) -> ServerMessage | None:
        """The next frame, or None if none comes within ``timeout`` seconds."""
        assert self.ws is not None
        if timeout <= 0:
            return None
        self.ws.settimeout(timeout)
        try:
            data = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        return codec.server_decoder.decode(data)

    @task
    def work(self) -> None:
        """Report a position, then take whatever comes until the next report is due."""
        if self.ws is None:
            self._connect()
            if self.ws is None:
                time.sleep(REPORT_EVERY_S)  # gevent-patched: yields to other users
                return
        started = time.perf_counter()
        try:
            self._report()
            due = started + REPORT_EVERY_S
            while (left := due - time.perf_counter()) > 0:
                msg = self.inbox.pop(0) if self.inbox else self._recv(left)
                if isinstance(msg, OfferMade):
                    self._take(msg)
        except (OSError, websocket.WebSocketException) as exc:
            self._fire("connection lost", started, 0, exc)
            self.on_stop()

    def _report(self) -> None:
        self.lat += random.uniform(-1e-4, 1e-4)
        self.lng += random.uniform(-1e-4, 1e-4)
        fix = Fix(lat=self.lat, lng=self.lng, at=int(time.time() * 1000))
        n = next(self.ids)
        if n % ACK_EVERY == 0:
            self.exchange("location", LocationReported(points=[fix], id=f"L{n}"))
        else:
            assert self.ws is not None
            self.ws.send(codec.encode(LocationReported(points=[fix])).decode())

    def _take(self, offer: OfferMade) -> None:
        lag_ms = max(0.0, time.time() * 1000 - offer.sent_at)
        self._fire("offer", time.perf_counter() - lag_ms / 1000, 1)
        accept = AcceptOffer(offer_id=offer.offer_id, id=f"A{next(self.ids)}")
        if not isinstance(self.exchange("accept", accept), Ack):
            return
        for step in STEPS:
            msg = ReportProgress(order_id=offer.order_id, step=step, id=f"P{next(self.ids)}")
            if not isinstance(self.exchange("progress", msg), Ack):
                return


class CustomerUser(FastHttpUser):
    """Customers: each order, by the next of ``CUSTOMERS_PER_USER`` customers in turn, is
    followed live until assigned, read back, or sometimes cancelled."""

    weight = 1
    wait_time = between(0.2, 0.6)

    def on_start(self) -> None:
        ids = [f"lc-{uuid.uuid4().hex[:10]}" for _ in range(max(1, CUSTOMERS_PER_USER))]
        self.tokens = itertools.cycle([customer_token(SECRET, cid) for cid in ids])
        # Let the workers spawned with it connect and report first: an order that finds
        # nobody waits the server's retry_interval_s (5 s by default) for its next search.
        time.sleep(random.uniform(*FIRST_ORDER_AFTER_S))  # gevent-patched

    @task
    def order(self) -> None:
        self.token = next(self.tokens)  # this order's customer, also for _cancel and _follow
        self.auth = {"Authorization": f"Bearer {self.token}"}
        lat, lng = near_centre(0.005)
        city = city_at(self.host or "")
        body = codec.encode(CreateOrder(city=city, skill="delivery", pickup=Point(lat, lng)))
        headers = {**self.auth, "Content-Type": "application/json"}
        started = time.perf_counter()
        with self.client.post(
            "/v1/orders", data=body.decode(), headers=headers, name="POST /v1/orders",
            catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code != 201:
                r.failure(f"{r.status_code}: {r.text}")
                return
            oid = codec.order_view_decoder.decode(r.content or b"").id
        if random.random() < CANCEL_SHARE:
            self._cancel(oid)
        else:
            self._follow(oid, started)
        with self.client.get(
            f"/v1/orders/{oid}", headers=self.auth, name="GET /v1/orders/[id]", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text}")

    def _cancel(self, oid: str) -> None:
        """Cancel; 409 ``not_cancellable`` is a fair answer when the job was already done."""
        with self.client.post(
            f"/v1/orders/{oid}/cancel",
            headers=self.auth,
            name="POST /v1/orders/[id]/cancel",
            catch_response=True,
        ) as r:
            if r.status_code == 409 and b"not_cancellable" in (r.content or b""):
                r.success()
            elif r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text}")

    def _follow(self, oid: str, started: float) -> None:
        """The live socket until the order has a worker (or ends): the ``assigned`` request."""
        url = f"{ws_base(self.host or '')}/v1/orders/{oid}/live?token={self.token}"
        exc: Exception | None = None
        try:
            ws = websocket.create_connection(url, timeout=TIMEOUT_S)
            try:
                state = _wait_assigned(ws)
            finally:
                ws.close()
            if state not in ASSIGNED:
                exc = ExchangeFailed(f"order {oid} ended {state} without a worker")
        except (OSError, websocket.WebSocketException, msgspec.DecodeError) as e:
            exc = e
        self.environment.events.request.fire(
            request_type="WS", name="assigned", response_time=ms_since(started),
            response_length=0, exception=exc, context={},
        )  # fmt: skip


def _wait_assigned(ws: websocket.WebSocket) -> str:
    """Read the live socket until the order is assigned or ends; its state then."""
    state = "created"
    while True:
        msg = codec.live_decoder.decode(ws.recv())
        if isinstance(msg, Snapshot):
            state = msg.order.state.value
        elif isinstance(msg, EventHappened):
            state = msg.event.state.value
        elif isinstance(msg, Error):
            raise ExchangeFailed(f"{msg.code}: {msg.message}")
        if state in ASSIGNED or state in TERMINAL:
            return state
