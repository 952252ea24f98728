"""A lean WebSocket client connection for the benchmark's load generator.

Tens of thousands of sockets and tens of thousands of frames a second from
one Python process, on the same two cores as the server, leave no room for a
task and a queue per socket. :class:`WsConn` is a bare ``asyncio.Protocol``:
it sends the HTTP upgrade, parses the server's frames into whole messages
handed to a callback, answers pings, and sends frames the caller encoded once
(:func:`client_frame`).

Client frames must be masked (RFC 6455, 5.3); this client uses the all-zero
masking key, which any server accepts and which turns masking into a no-op,
so a frame is header plus payload and a pre-encoded frame can be reused. The
key exists to protect intermediaries from crafted payloads; on loopback with
known payloads there is none to protect.

Nothing here imports ``server``; the messages themselves come from ``protocol``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable, Mapping
from typing import cast

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ZERO_MASK = b"\x00\x00\x00\x00"

OnMessage = Callable[[bytes], None]


class HandshakeError(ConnectionError):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status_line: str) -> None:
        super().__init__(f"handshake refused: {status_line}")
        self.status_line = status_line


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked (zero key) client frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + ZERO_MASK + payload


def upgrade_request(host: str, path: str, headers: Mapping[str, str]) -> bytes:
    """The HTTP/1.1 upgrade request for ``path``."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _frame_at(buf: bytearray) -> tuple[int, int, int] | None:
    """(first byte, payload start, payload end) of the frame at the start of ``buf``,
    or None if it is not all there yet."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    length, start = b1 & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, start = struct.unpack_from("!H", buf, 2)[0], 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, start = struct.unpack_from("!Q", buf, 2)[0], 10
    if b1 & 0x80:
        start += 4  # a masked server frame is a protocol error; skip the key and carry on
    if len(buf) < start + length:
        return None
    return b0, start, start + length


class WsConn(asyncio.Protocol):
    """One client WebSocket. ``opened`` resolves after the 101; ``closed`` when the
    connection is gone. Each complete text or binary message goes to ``on_message``."""

    def __init__(self, request: bytes, on_message: OnMessage | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        # A failed handshake nobody waits for any more (timed out) is not worth a warning.
        self.opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.closed: asyncio.Future[None] = loop.create_future()
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self._request = request
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._upgraded and not self._read_upgrade():
            return
        while (frame := _frame_at(self._buf)) is not None:
            b0, start, end = frame
            payload = bytes(self._buf[start:end])
            del self._buf[:end]
            self._on_frame(b0, payload)

    def _read_upgrade(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        status_line = bytes(self._buf[: self._buf.find(b"\r\n")]).decode("latin-1")
        del self._buf[: end + 4]
        if status_line.split(" ", 2)[1:2] != ["101"]:
            self.opened.set_exception(HandshakeError(status_line))
            self.abort()
            return False
        self._upgraded = True
        self.opened.set_result(None)
        return True

    def _on_frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        if opcode == OP_PING:
            self.send(client_frame(payload, OP_PONG))
        elif opcode == OP_CLOSE:
            self.send(client_frame(payload[:2], OP_CLOSE))
            if self.transport is not None:
                self.transport.close()
        elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            self._parts.append(payload)
            if b0 & 0x80:
                message = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
                self._parts = []
                if self.on_message is not None:
                    self.on_message(message)

    def send(self, frame: bytes) -> bool:
        """Write an encoded frame; False if the connection is gone."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(frame)
        return True

    def send_text(self, payload: bytes) -> bool:
        return self.send(client_frame(payload))

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel (congestion on this socket)."""
        return self.transport.get_write_buffer_size() if self.transport else 0

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_ws(
    host: str, port: int, path: str, headers: Mapping[str, str] | None = None,
    on_message: OnMessage | None = None, timeout_s: float = 30.0,
) -> WsConn:  # fmt: skip
    """Connect and upgrade; raises OSError, HandshakeError or TimeoutError."""
    loop = asyncio.get_running_loop()
    request = upgrade_request(f"{host}:{port}", path, headers or {})
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: WsConn(request, on_message), host, port), timeout_s
    )
    try:
        await asyncio.wait_for(asyncio.shield(conn.opened), timeout_s)
    except BaseException:
        conn.abort()
        raise
    return conn
