"""uvicorn's own cost: a raw ASGI app on uvicorn that only decodes and counts.

The benchmark runs this in a subprocess between the bare ``websockets`` server
(``loadtest.bare_server``) and ``dispatch serve``, with the same client load.
uvicorn runs with exactly the dispatch server's settings (``server.cli``
``_serve``: uvloop, httptools, the sans-I/O ``websockets`` protocol, the same
frame limit and pings, lifespan on, no access log), and the app does what the
bare server does: accept any WebSocket, decode each text frame with the
protocol's worker decoder, count location reports. What one message costs
here, against the bare figure, is what uvicorn's ASGI WebSocket layer adds;
against the dispatch server's figure, what the server's own work adds.

``GET /metrics`` answers ``{"messages": n, "errors": n, "connections": n}``,
as the bare server does. Nothing of ``server`` is imported.

Run: ``python -m loadtest.uvicorn_floor --port 8766``.
"""

from __future__ import annotations

import argparse
import gc
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import uvicorn

from protocol import codec
from protocol.messages import LocationReported

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_FRAME_BYTES = 65536  # the server's max_frame_bytes default (server/process/settings.py)
GC_THRESHOLDS = (50_000, 20, 100)  # the server's (server/node/runtime.py GC_THRESHOLDS)


def tune_gc() -> None:
    """What the dispatch server does at start-up (``server.node.runtime.tune_gc``), so
    that the two are compared with the same collector settings: collect, move
    the start-up objects out of the collector's sight, collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class FloorApp:
    """The raw ASGI app: WebSockets are decoded and counted, ``/metrics`` reads the counts."""

    def __init__(self) -> None:
        self.messages = 0
        self.errors = 0
        self.connections = 0

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self.websocket(receive, send)
        elif kind == "http":
            await self.http(scope, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def websocket(self, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        self.connections += 1
        decode = codec.worker_decoder.decode
        try:
            while True:
                msg = await receive()
                if msg["type"] != "websocket.receive":
                    return
                data = msg.get("text")
                try:
                    decoded = decode(data if data is not None else msg.get("bytes", b""))
                except msgspec.DecodeError:
                    self.errors += 1
                    continue
                if isinstance(decoded, LocationReported):
                    self.messages += 1
        finally:
            self.connections -= 1

    async def http(self, scope: Message, send: Send) -> None:
        if scope["path"] != "/metrics":
            status, body = 404, b"not found\n"
        else:
            counts = {"messages": self.messages, "errors": self.errors,
                      "connections": self.connections}  # fmt: skip
            status, body = 200, json.dumps(counts).encode() + b"\n"
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = (await receive())["type"]
            if event == "lifespan.startup":
                tune_gc()  # where the dispatch server tunes it too: at lifespan start-up
                await send({"type": "lifespan.startup.complete"})
            elif event == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        FloorApp(), host=args.host, port=args.port, loop="uvloop", http="httptools",
        ws="websockets-sansio", ws_max_size=MAX_FRAME_BYTES, ws_ping_interval=20.0,
        ws_ping_timeout=20.0, lifespan="on", log_level="warning", access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
