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

from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import codec
from protocol.messages import EventHappened, OrderEvent, Snapshot
from server import auth
from server.core.errors import ClientError
from server.core.order_states import TERMINAL
from server.runtime import Runtime
from server.store.keys import OrderId
from server.store.redis_store import StoreUnavailable

CLOSE_NOT_FOUND = 4404


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
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    await rt.hub.watch(oid, queue.put_nowait)
    try:
        await _follow(ws, rt, oid, me.subject, after, queue)
    except (WebSocketDisconnect, StoreUnavailable):
        pass
    finally:
        await rt.hub.unwatch(oid, queue.put_nowait)


async def _follow(
    ws: WebSocket, rt: Runtime, oid: OrderId, customer: str, after: str | None,
    queue: asyncio.Queue[bytes],
) -> None:  # fmt: skip
    try:
        view = await rt.dispatcher.view(oid, customer, after)
    except ClientError as exc:
        from protocol.messages import Error

        await ws.send_text(codec.encode(Error(code=exc.code, message=exc.message)).decode())
        await ws.close(CLOSE_NOT_FOUND)
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
