"""Log lines that tell an operator what happens without flooding the log.

A loop that retries every few milliseconds while Redis is unreachable, or a
server answering thousands of requests with 503, would otherwise write
thousands of identical warnings; an operator wants to know since when, until
when, and how many. :class:`Outage` logs the start and the end of a failure;
:class:`Throttled` logs a recurring event at most every ``every_s`` seconds,
with a count of the ones it held back.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def reason(exc: BaseException) -> str:
    """An exception as a log line can show it (a bare TimeoutError has no message)."""
    return str(exc) or type(exc).__name__


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
