"""Rate limits as pure token buckets: ``now`` comes in as an argument.

A socket has one bucket per kind of frame (location reports, everything
else); a frame that finds its bucket empty is refused with ``rate_limited``
and changes nothing, and a socket that keeps sending into an empty bucket is
closed (``Strikes``).
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> bool:
        """Take one token if there is one; whether there was."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class Strikes:
    """Refused frames in a row; past ``limit`` the sender is abusive."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def hit(self) -> bool:
        """Count a refused frame; whether the limit is now passed."""
        self.count += 1
        return self.count > self.limit

    def clear(self) -> None:
        self.count = 0
