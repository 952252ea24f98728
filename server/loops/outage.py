"""Telling a store outage once: when it starts and when it ends, not once per try.

A loop that retries every few milliseconds while Redis is unreachable would
otherwise write thousands of identical warnings; an operator wants two
lines: since when, and until when.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Outage:
    """Whether ``what`` is failing now; logs the change, not every failure."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.down = False
        self.failures = 0

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        if not self.down:
            log.warning("%s: %s (logged once until it recovers)", self.what, exc)
        self.down = True

    def recovered(self) -> None:
        if self.down:
            log.warning("%s: the store answers again after %d failures", self.what, self.failures)
        self.down, self.failures = False, 0
