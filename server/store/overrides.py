"""What operators do to orders and workers, in Redis: reassign an order, move
its deadline, hold a worker back (pause, block, block for one customer).

Each is one script, a compare-and-set step like the rest (``reassign.lua``,
``extend.lua``, ``hold.lua``), that records what it did as an event carrying
the operator's id: on the order's history and the city's stream for an order,
on the city's stream for a worker. The holds live in the city's ``holds`` hash
(:func:`server.store.keys.holds`), which the search and ``connect`` read.
"""

from __future__ import annotations

from typing import Literal

from server.core.errors import Refused
from server.store import keys, replies
from server.store.arguments import HoldArgs, ReassignArgs, packed
from server.store.keys import OrderId, WorkerId
from server.store.redis_store import Store

HoldAction = Literal["pause", "resume", "block", "unblock"]


class OverrideStore:
    """The operators' overrides on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def reassign(
        self, oid: OrderId, actor: str, reason: str, first_step: str, lease_ms: int,
        by: str = "operator", done: int = 0,
    ) -> replies.ReassignReply:  # fmt: skip
        """Take the order from its offer's holders or its worker (never to be offered
        it again), restart its workflow at ``first_step`` and its dispatch deadline
        now; its timer is leased to the caller, who dispatches it. With ``by``
        ``worker`` the worker ``actor`` hands its job back, if the order still has
        ``done`` steps done (else ``stale``)."""
        if not keys.city_of(oid):
            raise Refused("order_not_found")
        city = keys.city_of(oid) or ""
        return await self.store.step(
            "reassign", keys.order_keys(oid) + keys.city_keys(city),
            [packed(ReassignArgs(oid, actor, reason, first_step, lease_ms, by, done))],
            replies.ReassignReply,
        )  # fmt: skip

    async def extend(
        self, oid: OrderId, actor: str, by_ms: int, default_max_ms: int
    ) -> replies.ExtendReply:
        """Move the deadline the order waits on by ``by_ms``; the new deadline."""
        if not keys.city_of(oid):
            raise Refused("order_not_found")
        return await self.store.step(
            "extend", keys.order_keys(oid), [oid, actor, by_ms, default_max_ms],
            replies.ExtendReply,
        )  # fmt: skip

    async def hold(
        self, city: str, wid: WorkerId, action: HoldAction, actor: str,
        for_ms: int = 0, customer: str = "", reason: str = "",
    ) -> None:  # fmt: skip
        """Pause (for ``for_ms`` from now, by Redis's clock), resume, block or
        unblock the worker, for every customer or for ``customer`` only;
        ``not_held`` when there is nothing to lift."""
        await self.store.step(
            "hold", [keys.holds(city), keys.worker(city, wid), *keys.city_keys(city)],
            [packed(HoldArgs(wid, action, actor, for_ms, customer, reason))], replies.Refusable,
        )  # fmt: skip

    async def holds_of(self, city: str, wid: WorkerId) -> tuple[int | None, bool, list[str]]:
        """What holds the worker back: paused until (None), blocked, and the
        customers it is blocked for. Reads the city's holds (one hash, bounded by
        what operators hold)."""
        fields = await self.store.hash_of(keys.holds(city))
        paused = fields.get(f"p:{wid}")
        suffix = f":{wid}"
        customers = sorted(
            k[2 : -len(suffix)] for k in fields if k.startswith("c:") and k.endswith(suffix)
        )
        return (int(paused) if paused else None), f"b:{wid}" in fields, customers

    async def worker_fields(self, city: str, wid: WorkerId) -> dict[str, str]:
        """The worker's record as stored (empty when it never connected or expired)."""
        return await self.store.hash_of(keys.worker(city, wid))
