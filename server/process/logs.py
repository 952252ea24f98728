"""Log lines that tell an operator what happens without flooding the log.

A loop that retries every few milliseconds while Redis is unreachable, or a
server answering thousands of requests with 503, would otherwise write
thousands of identical warnings; an operator wants to know since when, until
when, and how many. :class:`Outage` logs the start and the end of a failure;
:class:`Throttled` logs a recurring event at most every ``every_s`` seconds,
with a count of the ones it held back.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson

log = logging.getLogger(__name__)

# Who a log line is about: set by the worker's socket (after hello) and by the
# task that dispatches or serves an order, so every line logged in that task
# carries them. A task copies them from its parent, and changes stay its own.
WORKER: contextvars.ContextVar[str] = contextvars.ContextVar("worker", default="")
ORDER: contextvars.ContextVar[str] = contextvars.ContextVar("order", default="")


@contextlib.contextmanager
def about_order(oid: str) -> Iterator[None]:
    """Lines logged inside this block name the order ``oid``."""
    token = ORDER.set(oid)
    try:
        yield
    finally:
        ORDER.reset(token)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(node)s %(name)s%(ids)s: %(message)s"


class Context(logging.Filter):
    """Put the node, worker and order ids on every record (as ``node``,
    ``worker``, ``order``, and ``ids`` for the text format)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        worker, order = WORKER.get(), ORDER.get()
        record.node, record.worker, record.order = self.node, worker, order
        ids = [f"{k}={v}" for k, v in (("worker", worker), ("order", order)) if v]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    node, and worker, order and exception when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "node": getattr(record, "node", ""),
        }
        for field in ("worker", "order"):
            if value := getattr(record, field, ""):
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def reason(exc: BaseException) -> str:
    """An exception as a log line can show it (a bare TimeoutError has no message)."""
    return str(exc) or type(exc).__name__


# What uvicorn and websockets log at INFO for every WebSocket, on the
# "uvicorn.error" logger whatever access_log says: the handshake's line (with
# its status), "connection open", and "connection closed" (or rejected/failed).
WEBSOCKET_LINES = frozenset({
    '%s - "WebSocket %s" [accepted]', '%s - "WebSocket %s" 403', '%s - "WebSocket %s" %d',
    "connection open", "connection closed", "connection rejected (%d %s)",
    "connection failed (%d %s)",
})  # fmt: skip


class WebSocketLines(logging.Filter):
    """On uvicorn's logger with access_log off: its lines about each WebSocket
    are access-log lines, two or three per connection (over a thousand for 500
    workers), so they are shown as DEBUG lines, at ``log_level = debug`` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        if record.msg not in WEBSOCKET_LINES:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class Throttled:
    """A warning logged at most once every ``every_s`` seconds, with a count of the rest."""

    def __init__(self, logger: logging.Logger, text: str, every_s: float = 10.0) -> None:
        self.logger = logger
        self.text = text
        self.every_s = every_s
        self.last = -every_s
        self.skipped = 0

    def __call__(self, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.skipped += 1
            return
        more = f" (and {self.skipped} more since the last report)" if self.skipped else ""
        self.logger.warning(self.text + more, *args)
        self.last, self.skipped = now, 0


class Outage:
    """Whether ``what`` is failing now; logs the change, not every failure."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.down = False
        self.failures = 0

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        if not self.down:
            log.warning("%s: %s (logged once until it recovers)", self.what, reason(exc))
        self.down = True

    def recovered(self) -> None:
        if self.down:
            log.warning("%s: the store answers again after %d failures", self.what, self.failures)
        self.down, self.failures = False, 0
