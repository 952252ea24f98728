"""The stack's own limit: a bare ``websockets`` server that only decodes and counts.

The benchmark runs this in a subprocess and sends it the same location frames
it sends the real server. Each text frame is decoded with the protocol's own
worker decoder (so into the same :class:`~protocol.messages.LocationReported`
struct) and counted; nothing else happens. What one message costs here is the
floor under what the dispatch server can cost: the event loop (uvloop, as the
server uses), the WebSocket parser and msgspec.

``GET /metrics`` answers ``{"messages": n, "errors": n, "connections": n}``.

Run: ``python -m loadtest.bare_server --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from http import HTTPStatus

import msgspec
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from protocol import codec
from protocol.messages import LocationReported


class Counter:
    """What the server has seen."""

    def __init__(self) -> None:
        self.messages = 0
        self.errors = 0
        self.connections = 0

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            async for frame in ws:
                try:
                    msg = codec.worker_decoder.decode(frame)
                except msgspec.DecodeError:
                    self.errors += 1
                    continue
                if isinstance(msg, LocationReported):
                    self.messages += 1
        finally:
            self.connections -= 1

    def metrics(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.path != "/metrics":
            return None
        body = json.dumps(
            {"messages": self.messages, "errors": self.errors, "connections": self.connections}
        )
        return ws.respond(HTTPStatus.OK, body + "\n")


async def serve_forever(host: str, port: int) -> None:
    counter = Counter()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        counter.handle, host, port, process_request=counter.metrics, compression=None,
        max_size=65536, ping_interval=20.0, ping_timeout=20.0, backlog=2048,
    ):  # fmt: skip
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
