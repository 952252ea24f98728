"""The deadline sweeper: every ``sweep_interval_ms`` this node claims the due
orders of every configured city (offer timeouts, search retries, orders due
at once after a takeover) and ticks them; every few seconds (at most half the
location age) it also forgets the positions of workers who stopped reporting,
taking them out of the search index.
"""

from __future__ import annotations

import asyncio
import itertools

from server.process.logs import Outage
from server.services.dispatcher import Dispatcher
from server.store.engine import StoreUnavailable

FORGET_STALE_EVERY_S = 5.0


async def sweep_forever(dispatcher: Dispatcher, interval_ms: int) -> None:
    """Sweep until cancelled. A store outage is logged once and waited out;
    any other error ends the loop, and its supervisor restarts it."""
    interval = interval_ms / 1000
    forget_s = min(FORGET_STALE_EVERY_S, dispatcher.max_age_ms / 2000)
    forget_every = max(1, int(forget_s / interval))
    outage = Outage("sweeper")
    for round_ in itertools.count():
        try:
            await dispatcher.sweep()
            if round_ % forget_every == 0:
                await dispatcher.forget_stale()
            outage.recovered()
        except StoreUnavailable as exc:
            outage.failed(exc)
        await asyncio.sleep(interval)
