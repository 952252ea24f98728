"""This node's catalogue: every category's version in force, kept in step
with Redis, and how an order's category is looked up.

Redis holds the catalogue (``server/store/catalogue.py``); every node keeps
a copy in memory, so creating an order costs no catalogue read. A change is
one script that bumps a change counter and publishes on the catalogue's
channel: the hub wakes :meth:`Catalogue.run`, which reads the catalogue
again. It also compares the counter every ``poll_s`` (one second), so a node
that missed the message (its pub/sub connection was down) catches up within
a second of reconnecting, and after every pub/sub resubscription.

At start a node applies the category files of the ``categories`` setting
(a file owns its category: a restart puts the file's definition back) and,
with ``builtin_categories``, the shipped examples that Redis does not have
yet (an operator's change to one of them stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

from protocol.catalogue import Category, CategoryDefinition
from server import categories
from server.core.errors import Refused
from server.process.logs import Outage
from server.store.catalogue import CatalogueStore
from server.store.engine import StoreUnavailable
from server.store.replies import CategoryReply

log = logging.getLogger(__name__)

POLL_S = 1.0
CONFIG = "config"  # who changed a category that came from a start-up file


def files(paths: Iterable[str]) -> list[Path]:
    """The category files named by the ``categories`` setting: files, and the
    ``.toml`` and ``.json`` files of folders."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".toml", ".json"))
        else:
            found.append(path)
    return found


class Catalogue:
    """The categories as this node last read them."""

    def __init__(self, store: CatalogueStore, poll_s: float = POLL_S) -> None:
        self.store = store
        self.poll_s = poll_s
        self.categories: dict[str, Category] = {}
        self.seq = -1
        self.refreshes = 0
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ reading

    def lookup(self, key: str) -> Category:
        """The category new orders of ``key`` use: ``unknown_category`` when
        there is none, ``category_retired`` when it takes no new orders."""
        found = self.categories.get(key)
        if found is None:
            raise Refused("unknown_category", f"there is no category {key!r}")
        if found.retired:
            raise Refused("category_retired", f"category {key!r} takes no new orders")
        return found

    async def refresh(self) -> bool:
        """Read the catalogue again if it changed; whether it had."""
        seq = await self.store.seq()
        if seq == self.seq:
            return False
        seq, found = await self.store.all()
        self.categories = {c.definition.key: c for c in found}
        self.seq = seq
        self.refreshes += 1
        return True

    def notified(self) -> None:
        """A change was published (or pub/sub reconnected): read again now."""
        self._changed.set()

    async def run(self) -> None:
        """Keep the copy in step: at each notification, and every ``poll_s``.
        A store outage is logged once and waited out (the copy stays as it
        was: orders keep being taken by the categories last read)."""
        outage = Outage("catalogue")
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._changed.wait()
            self._changed.clear()
            try:
                if await self.refresh():
                    log.info("catalogue: %d categories (change %d)",
                             len(self.categories), self.seq)  # fmt: skip
                outage.recovered()
            except StoreUnavailable as exc:
                outage.failed(exc)

    # ------------------------------------------------------------ writing

    async def apply(self, definition: CategoryDefinition, by: str) -> CategoryReply:
        """Store a checked definition as its next version (changed ``by`` whom)
        and read it back at once."""
        result = await self.store.apply(definition, by)
        await self.refresh()
        return result

    async def set_retired(self, key: str, retired: bool, by: str) -> CategoryReply:
        result = await self.store.set_retired(key, "retire" if retired else "restore", by)
        await self.refresh()
        return result

    async def seed(self, paths: Iterable[str], builtins: bool) -> None:
        """Apply the configured category files, and the built-in examples Redis
        does not have yet. A bad file stops the start with every problem named."""
        await self.refresh()
        if builtins:
            for definition in categories.builtins():
                if definition.key not in self.categories:
                    await self.store.apply(definition, CONFIG)
        for path in files(paths):
            result = await self.store.apply(categories.load(path), CONFIG)
            if result.changed:
                log.info("catalogue: %s applied from %s (version %d)",
                         path.stem, path, result.version)  # fmt: skip
        await self.refresh()
