"""Operations on nodes: heartbeats, the claim to take over a dead node, and
forgetting a node. Imports nothing above ``server/store/``.
"""

from __future__ import annotations

from server.store import keys, replies
from server.store.engine import Engine
from server.store.records import text


class NodeOps(Engine):
    """The store's operations on the registry of nodes."""

    async def heartbeat(self, node: str, ttl_ms: int) -> replies.HeartbeatReply:
        """Record that ``node`` is alive; the live and the dead nodes."""
        return await self.script("heartbeat", [keys.NODES], [node, ttl_ms], replies.HeartbeatReply)

    async def claim_takeover(self, dead: str, me: str, ttl_ms: int) -> bool:
        """Whether this node may take over ``dead`` (one node at a time does)."""
        return await self.call("SET", keys.takeover(dead), me, "NX", "PX", ttl_ms) == b"OK"

    async def node_is_stale(self, node: str, stale_before: int) -> bool:
        """Whether ``node``'s last beat is still older than ``stale_before`` (ms)."""
        score = await self.call("ZSCORE", keys.NODES, node)
        return score is not None and float(text(score)) < stale_before

    async def forget_node(self, node: str, stale_before: int | None = None) -> None:
        """Drop ``node`` from the registry: after a clean stop, or (``stale_before``) after
        a takeover, and then only if it has not beaten again since it was judged dead."""
        if stale_before is None:
            await self.call_many([("ZREM", keys.NODES, node), ("DEL", keys.takeover(node))])
            return
        await self.script("forget_node", [keys.NODES], [node, stale_before], replies.DoneReply)
        await self.call("DEL", keys.takeover(node))
