"""What a ``dispatch serve`` process takes before it starts anything: its data
directory and its port.

A second server pointed at a running one's data directory (a node added
without ``REDIS_URL``) or port (a typo) must leave it alone. So the data
directory is locked (``flock`` on ``dispatch.lock`` in it, held for the
life of the process that owns the private Redis there) and the port is bound
(checked, by the ``--workers`` parent), before any Redis or app starts; a
process that cannot take either gets :class:`Refused` and exits having
touched nothing.

Imports nothing of the server: the CLI, the ``--workers`` fleet and the
private Redis call it.

Errors::

    Refused                  something this process needs is another's
    ├── DataDirInUse         another live process holds the data directory
    └── PortInUse            the address cannot be bound (another server listens)
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = "dispatch.lock"
BACKLOG = 2048

# Data directories this process holds, with the lock file's descriptor. An
# flock belongs to one open file: opening the file again here and locking it
# would be refused, so a second claim by the same process is answered here.
_HELD: dict[Path, int] = {}


class Refused(Exception):
    """Something this process needs is another's; it has started nothing."""


class DataDirInUse(Refused):
    """Another live process holds ``data_dir`` (its pid, when it wrote one)."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.data_dir, self.pid = data_dir, pid
        holder = f"another dispatch process (pid {pid})" if pid else "another dispatch process"
        super().__init__(
            f"the data directory {data_dir} is in use by {holder}: {data_dir / LOCK_FILE} "
            "is locked. Give each server its own DISPATCH_DATA_DIR, or run them all on "
            "one Redis (REDIS_URL, or dispatch serve --workers N)"
        )


class PortInUse(Refused):
    """``host``:``port`` cannot be bound; ``reason`` is the system's word for it."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host, self.port, self.reason = host, port, reason
        super().__init__(
            f"cannot listen on {host}:{port}: {reason}. Is another server running on this "
            "port? Choose another with --port or DISPATCH_PORT"
        )


def lock_data_dir(data_dir: str | Path) -> Path:
    """Hold ``data_dir`` for the rest of this process's life (creating it), or
    raise :class:`DataDirInUse`. The lock goes with the process, however it ends;
    its children do not inherit it."""
    path = Path(data_dir).resolve()
    if path in _HELD:
        return path
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        raise DataDirInUse(path, pid) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[path] = fd
    return path


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote, if it has written it yet."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def listening_sockets(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Sockets listening on every address ``host`` names, now; with ``reuse_port``
    other processes may listen on the port too (SO_REUSEPORT: the kernel spreads
    new connections over them). Raise :class:`PortInUse` if one cannot listen."""
    sockets = _bound(host, port, reuse_port)
    try:
        for sock in sockets:
            sock.listen(BACKLOG)
    except OSError as exc:
        _close(sockets)
        raise PortInUse(host, port, exc.strerror or str(exc)) from exc
    return sockets


def check_port(host: str, port: int) -> None:
    """Raise :class:`PortInUse` if a server listens on the port, with SO_REUSEPORT
    or not (a socket bound without it shares the port with no listener). The
    ``--workers`` parent asks before it starts anything; its nodes then listen
    there with SO_REUSEPORT."""
    _close(_bound(host, port, reuse_port=False))


def _bound(host: str, port: int, reuse_port: bool) -> list[socket.socket]:
    """A socket bound to each address ``host`` names (each once)."""
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:  # as asyncio does: "::" is not also 0.0.0.0
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:  # socket.gaierror (an unknown host) is one
        _close(sockets)
        raise PortInUse(host, port, exc.strerror or str(exc)) from exc
    return sockets


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
