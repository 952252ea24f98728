"""A customer following one order live over a WebSocket.

The socket gets a ``snapshot`` (the order, with the events after ``after`` or
all of them), then every later event exactly once, and the assigned worker's
positions. The node subscribes to the order's channel *before* reading the
snapshot and drops live events the snapshot already held, so nothing falls in
the gap between the two. The server closes with 1000 once a terminal event
has been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.messages import Error, EventHappened, OrderEvent, Snapshot
from server import auth
from server.core.errors import ClientError
from server.core.order_states import TERMINAL
from server.runtime import Runtime
from server.store.keys import OrderId
from server.store.redis_store import StoreUnavailable

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_STORE_LOST = 1011
EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}\Z")


def stream_id(event_id: str) -> tuple[int, int]:
    """A Redis stream id as a comparable pair."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


async def live_endpoint(ws: WebSocket) -> None:
    """Starlette endpoint for ``/v1/orders/{order_id}/live``."""
    rt: Runtime = ws.app.state.runtime
    token = auth.bearer(ws.headers.get("authorization")) or ws.query_params.get("token")
    try:
        me = auth.verify(rt.settings.jwt_secret, token, "customer")
    except ClientError:
        await ws.close(code=1008)
        return
    oid = OrderId(ws.path_params["order_id"])
    after = ws.query_params.get("after") or None
    await ws.accept()
    if after is not None and not EVENT_ID.match(after):
        await _close_with(ws, "bad_request", "after must be an event id", CLOSE_BAD_REQUEST)
        return
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        await rt.hub.watch(oid, queue.put_nowait)
        await _follow(ws, rt, oid, me.subject, after, queue)
    except WebSocketDisconnect:
        pass
    except StoreUnavailable as exc:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await _close_with(ws, "unavailable", str(exc), CLOSE_STORE_LOST)
    finally:
        await rt.hub.unwatch(oid, queue.put_nowait)


async def _close_with(ws: WebSocket, code: str, text: str, close_code: int) -> None:
    await ws.send_text(codec.encode(Error(code=code, message=text)).decode())
    await ws.close(close_code)


async def _follow(
    ws: WebSocket, rt: Runtime, oid: OrderId, customer: str, after: str | None,
    queue: asyncio.Queue[bytes],
) -> None:  # fmt: skip
    try:
        view = await rt.dispatcher.view(oid, customer, after)
    except ClientError as exc:
        await _close_with(ws, exc.code, exc.message, CLOSE_NOT_FOUND)
        return
    await ws.send_text(codec.encode(Snapshot(order=view)).decode())
    last = view.events[-1].id if view.events else after
    if view.state in TERMINAL:
        await ws.close(1000)
        return
    closed = asyncio.create_task(_wait_closed(ws))
    try:
        while not closed.done():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            payload = getter.result()
            event = _event_in(payload)
            if event is not None:
                if last is not None and stream_id(event.id) <= stream_id(last):
                    continue
                last = event.id
            await ws.send_text(payload.decode())
            if event is not None and event.state in TERMINAL:
                await ws.close(1000)
                return
    finally:
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closed


def _event_in(payload: bytes) -> OrderEvent | None:
    msg = codec.live_decoder.decode(payload)
    return msg.event if isinstance(msg, EventHappened) else None


async def _wait_closed(ws: WebSocket) -> None:
    """Read (and ignore) client frames until the client goes away."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass
