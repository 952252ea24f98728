"""A small keep-alive HTTP/1.1 client for the benchmark's load generator.

Creating hundreds of orders a second next to the server on a two-core machine
needs a client that costs little: this one writes a prebuilt request on a
pooled connection and reads a ``Content-Length`` body, nothing more (the
server's JSON answers always carry one). It is not a general HTTP client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping


class HttpError(ConnectionError):
    """The answer could not be read as HTTP/1.1 with a Content-Length."""


class HttpPool:
    """Keep-alive connections to one host; a request takes an idle one or opens one."""

    def __init__(self, host: str, port: int, headers: Mapping[str, str] | None = None) -> None:
        self.host, self.port = host, port
        base = {"Host": f"{host}:{port}", **(headers or {})}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in base.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, timeout_s: float = 30.0,
    ) -> tuple[int, bytes]:  # fmt: skip
        """Send one request; return (status, body)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body is not None:
            extra += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = f"{method} {path} HTTP/1.1\r\n{self._head}{extra}\r\n".encode() + (body or b"")
        reader, writer = await self._take()
        try:
            writer.write(data)
            status, payload, keep = await asyncio.wait_for(_read_response(reader), timeout_s)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, payload

    async def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0]!r}")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "content-length" not in fields:
        raise HttpError("answer without Content-Length")
    body = await reader.readexactly(int(fields["content-length"]))
    return int(parts[1]), body, fields.get("connection", "").lower() != "close"


async def get(
    host: str, port: int, path: str, timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:  # fmt: skip
    """One GET on a fresh connection (for /metrics and /readyz)."""
    pool = HttpPool(host, port, dict(headers or {}))
    try:
        return await pool.request("GET", path, timeout_s=timeout_s)
    finally:
        pool.close()
