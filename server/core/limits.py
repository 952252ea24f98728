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
    """Refused frames, forgiven at ``forgive_per_s``: past ``limit`` unforgiven ones the
    sender is abusive. A client a little over its rate is refused now and then and goes
    on; one far over it is closed within seconds, however it paces its flood."""

    __slots__ = ("bucket",)

    def __init__(self, limit: int, forgive_per_s: float, now: float) -> None:
        self.bucket = TokenBucket(forgive_per_s, limit, now)

    def hit(self, now: float) -> bool:
        """Count a refused frame; whether the sender is now abusive."""
        return not self.bucket.take(now)
