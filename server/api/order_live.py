"""A customer following one order live over a WebSocket.

The socket gets a ``snapshot`` (the order, with the events after ``after`` or
all of them), then every later event exactly once, in order, and the
assigned worker's positions. The node subscribes to the order's channel and
waits for Redis to confirm *before* reading the snapshot, and drops live
events the snapshot already held, so nothing falls in the gap between the
two. When the node's pub/sub connection is lost and made again, the follower
reads the events after the last one it sent, so none published meanwhile is
missed. The server closes with 1000 once a terminal event has been sent.

What waits to be sent is bounded: only the newest position is kept, and a
client that lets more than ``outbox_max_bytes`` of events pile up is closed
with 4008. The client sends nothing on this socket; frames it sends anyway
are read and dropped, and more than ``frame_rate_per_s`` of them a second
for a few seconds close the socket with 1008.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec, ids
from protocol.errors import Close, message
from protocol.messages import Error, EventHappened, OrderEvent, OrderView, Snapshot
from server.api.origins import origin_allowed
from server.core.errors import ClientError
from server.core.limits import Strikes, TokenBucket
from server.core.order_states import TERMINAL
from server.node.runtime import Runtime
from server.process import auth
from server.store.engine import StoreUnavailable
from server.store.keys import OrderId

BURST_SECONDS = 3.0
STRIKES = 50
RESYNC_PATIENCE_S = 10.0


class Overflow(Exception):
    """The client let too much pile up."""


class Flooded(Exception):
    """The client kept sending frames on a socket it should only read."""


class LiveFollower:
    """What waits to go out on one live socket: events in order, the newest position."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.events: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.position: bytes | None = None
        self.resync_wanted = False
        self.overflowed = False
        self.ready = asyncio.Event()

    def deliver(self, payload: bytes) -> None:
        """A payload from the hub: an event, or a position."""
        if payload.startswith(b'{"type":"position"'):
            self.position = payload
        else:
            self.size += len(payload)
            if self.size > self.max_bytes:
                self.overflowed = True
            else:
                self.events.append(payload)
        self.ready.set()

    def resync(self) -> None:
        """Pub/sub was lost and made again: read the events after the last one sent."""
        self.resync_wanted = True
        self.ready.set()

    async def next(self) -> bytes | None:
        """The next payload to send, or None when a resync is wanted."""
        while True:
            if self.overflowed:
                raise Overflow
            if self.resync_wanted:
                self.resync_wanted = False
                return None
            if self.events:
                payload = self.events.popleft()
                self.size -= len(payload)
                return payload
            if self.position is not None:
                payload, self.position = self.position, None
                return payload
            self.ready.clear()
            await self.ready.wait()


async def live_endpoint(ws: WebSocket) -> None:
    """Starlette endpoint for ``/v1/orders/{order_id}/live``."""
    rt: Runtime = ws.app.state.runtime
    if not origin_allowed(ws.headers.get("origin"), rt.settings.allowed_origins):
        await ws.close(code=Close.POLICY)
        return
    token = auth.bearer(ws.headers.get("authorization")) or ws.query_params.get("token")
    try:
        me = rt.verify(token, "customer")
    except ClientError:
        await ws.close(code=Close.POLICY)
        return
    oid = OrderId(ws.path_params["order_id"])
    after = ws.query_params.get("after") or None
    await ws.accept()
    if after is not None and not ids.EVENT_RE.match(after):
        await _close_with(ws, "bad_request", "after must be an event id", Close.BAD_REQUEST)
        return
    if not ids.ORDER_RE.match(oid):
        await _close_with(ws, "order_not_found", message("order_not_found"), Close.NOT_FOUND)
        return
    follower = LiveFollower(rt.settings.outbox_max_bytes)
    try:
        await rt.hub.watch(oid, follower)
        try:
            await _follow(ws, rt, oid, me.subject, after, follower)
        finally:
            rt.hub.unwatch(oid, follower)
    except (WebSocketDisconnect, Flooded):
        pass
    except Overflow:
        rt.stats["slow_readers_closed"] += 1
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await ws.close(Close.SLOW_READER)
    except StoreUnavailable:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await _close_with(ws, "unavailable", message("unavailable"), Close.STORE_LOST)


async def _close_with(ws: WebSocket, code: str, text: str, close_code: int) -> None:
    await ws.send_text(codec.encode(Error(code=code, message=text)).decode())
    await ws.close(close_code)


async def _follow(
    ws: WebSocket, rt: Runtime, oid: OrderId, customer: str, after: str | None,
    follower: LiveFollower,
) -> None:  # fmt: skip
    try:
        view = await rt.dispatcher.view(oid, customer, after)
    except ClientError as exc:
        await _close_with(ws, exc.code, exc.message, Close.NOT_FOUND)
        return
    await ws.send_text(codec.encode(Snapshot(order=view)).decode())
    last = view.events[-1].id if view.events else after
    if view.state in TERMINAL:
        await ws.close(Close.DONE)
        return
    reader = asyncio.create_task(_drop_client_frames(ws, rt))
    try:
        while not reader.done():
            getter = asyncio.create_task(follower.next())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                reader.result()  # raises if the client flooded
                return
            payload = getter.result()
            if payload is None:  # resync: the events after the last one sent, from the store
                missed = await _read_again(rt, oid, customer, last)
                payloads = [codec.encode(EventHappened(event=e)) for e in missed.events]
            else:
                payloads = [payload]
            for data in payloads:
                event = _event_in(data)
                if event is not None:
                    if last is not None and ids.event_order(event.id) <= ids.event_order(last):
                        continue
                    last = event.id
                await ws.send_text(data.decode())
                if event is not None and event.state in TERMINAL:
                    await ws.close(Close.DONE)
                    return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Flooded):
            await reader


async def _read_again(rt: Runtime, oid: OrderId, customer: str, after: str | None) -> OrderView:
    """The order's events after ``after``, read again after pub/sub came back: the store
    may still be settling (a restarted Redis), so keep trying for a while before giving
    up (the caller then closes with 1011)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESYNC_PATIENCE_S
    while True:
        try:
            return await rt.dispatcher.view(oid, customer, after)
        except StoreUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


def _event_in(payload: bytes) -> OrderEvent | None:
    msg = codec.live_decoder.decode(payload)
    return msg.event if isinstance(msg, EventHappened) else None


async def _drop_client_frames(ws: WebSocket, rt: Runtime) -> None:
    """Read (and drop) client frames until the client goes away; close a flooder (1008)."""
    loop = asyncio.get_running_loop()
    rate = rt.settings.frame_rate_per_s
    now = loop.time()
    bucket, strikes = TokenBucket(rate, rate * BURST_SECONDS, now), Strikes(STRIKES, 1.0, now)
    while (await ws.receive())["type"] != "websocket.disconnect":
        now = loop.time()
        if not bucket.take(now) and strikes.hit(now):
            await ws.close(Close.POLICY)
            raise Flooded
