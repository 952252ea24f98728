"""The catalogue in Redis: category definitions, their versions, and the
change counter every node watches.

Layout (one hash tag, ``{@catalogue}``, that no city can have)::

    d:{@catalogue}:keys        set: every category key ever applied
    d:{@catalogue}:c:<key>     hash: version, def (JSON), retired (0/1), updated (ms),
                               by (who made the last change)
    d:{@catalogue}:c:<key>:v   hash: version -> def, the last KEEP_VERSIONS versions
    d:{@catalogue}:seq         counts changes
    d:{@catalogue}:changed     channel: '<key> <version> <seq>' after each change

These keys are configuration, bounded by what operators define: they have
no TTL, and the history keeps only the last versions (older ones are
deleted in the step that writes a new one). An order never needs an old
version from here: what it runs by is pinned on the order itself.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from protocol.catalogue import Category, CategoryDefinition
from server.store import keys, replies
from server.store.arguments import CategoryArgs, packed
from server.store.engine import StoreUnavailable
from server.store.records import decoded, pairs, text
from server.store.redis_store import Store

KEEP_VERSIONS = 20

_definition = msgspec.json.Decoder(CategoryDefinition)
_encode = msgspec.json.Encoder().encode


def encoded(definition: CategoryDefinition) -> bytes:
    """A definition as stored: compact JSON, fields in their declared order, so
    the same definition always encodes to the same bytes."""
    return _encode(definition)


def _category(fields: dict[str, str]) -> Category:
    try:
        definition = _definition.decode(fields["def"])
    except (KeyError, msgspec.DecodeError) as exc:
        raise StoreUnavailable(f"a stored category does not decode: {exc}") from exc
    return Category(definition=definition, version=int(fields["version"]),
                    updated_at=int(fields.get("updated") or 0),
                    retired=fields.get("retired") == "1",
                    updated_by=fields.get("by") or None)  # fmt: skip


class CatalogueStore:
    """Reads and writes the catalogue through the node's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _keys(self, key: str) -> list[str]:
        return [keys.category(key), keys.category_history(key), keys.CATEGORY_KEYS,
                keys.CATALOGUE_SEQ]  # fmt: skip

    async def apply(self, definition: CategoryDefinition, by: str) -> replies.CategoryReply:
        """Store ``definition`` as its category's next version, recording ``by``
        whom (nothing changes when it equals the version in force)."""
        key = definition.key
        return await self.store.step(
            "category", self._keys(key),
            [packed(CategoryArgs(key, "apply", encoded(definition).decode(), KEEP_VERSIONS, by))],
            replies.CategoryReply,
        )  # fmt: skip

    async def set_retired(
        self, key: str, action: Literal["retire", "restore"], by: str
    ) -> replies.CategoryReply:
        """Retire a category (no new orders) or restore it, recording ``by`` whom;
        ``category_not_found`` if it was never applied."""
        return await self.store.step(
            "category", self._keys(key), [packed(CategoryArgs(key, action, "", KEEP_VERSIONS, by))],
            replies.CategoryReply,
        )  # fmt: skip

    async def seq(self) -> int:
        """How many changes the catalogue has seen."""
        return int(text(await self.store.call("GET", keys.CATALOGUE_SEQ) or b"0"))

    async def all(self) -> tuple[int, list[Category]]:
        """The change count and every category, read together."""
        seq, members = await self.store.call_many(
            [("GET", keys.CATALOGUE_SEQ), ("SMEMBERS", keys.CATEGORY_KEYS)]
        )
        names = sorted(text(m) for m in members) if isinstance(members, list) else []
        rows = (
            await self.store.call_many([("HGETALL", keys.category(n)) for n in names])
            if names
            else []
        )
        found = [decoded(pairs(row)) for row in rows if isinstance(row, list) and row]
        return int(text(seq or b"0")), [_category(f) for f in found]

    async def version(self, key: str, version: int) -> CategoryDefinition | None:
        """Version ``version`` of a category, if the history still has it."""
        raw = await self.store.call("HGET", keys.category_history(key), version)
        return None if raw is None else _definition.decode(text(raw))
