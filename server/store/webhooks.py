"""Webhooks in Redis: subscriptions, the cities' event streams read in a
consumer group, messages waiting for their next attempt, the delivery log
and dead letters.

Layout::

    d:{@hooks}:subs            set: every subscription's id
    d:{@hooks}:s:<id>          hash: def (JSON), enabled (0/1), reason
    d:{@hooks}:seq             counts changes to subscriptions
    d:{@hooks}:log:<id>        list: the latest delivery attempts (JSON), capped
    d:{@hooks}:dead:<id>       list: messages given up on (JSON), capped
    d:{city}:events            stream: every event of the city (group 'webhooks')
    d:{city}:hooks:due         zset: message id -> when its next attempt is due
    d:{city}:hooks:m:<msg>     hash: sub, type, body, attempts (expires after
                               the whole retry schedule)

Subscriptions are configuration (no TTL, bounded by what operators create);
logs and dead letters are capped and expire ``retention_ms`` after their last
write; a waiting message expires after its schedule would have ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, cast

import msgspec

from protocol.webhooks import DeadLetter, Delivery, Subscription
from server.store import keys, replies
from server.store.engine import StoreUnavailable
from server.store.records import decoded, pairs, text
from server.store.redis_store import Store

LOG_KEEP = 1000
DEAD_KEEP = 1000
CLAIM_COUNT = 100

_subscription = msgspec.json.Decoder(Subscription)
_delivery = msgspec.json.Decoder(Delivery)
_dead = msgspec.json.Decoder(DeadLetter)
_encode = msgspec.json.Encoder().encode


class Entry(NamedTuple):
    """One event read from a city's stream."""

    city: str
    id: str
    kind: str  # order, worker
    event: bytes  # the event as JSON
    order: str
    category: str


class Waiting(NamedTuple):
    """A message waiting for its next attempt."""

    id: str
    sub: str
    type: str
    body: bytes
    attempts: int


def _entries(city: str, raw: object) -> list[Entry]:
    """Stream entries ([id, [field, value, ...]], ...) as :class:`Entry`; an entry
    trimmed away while pending comes back without fields and is skipped."""
    found = []
    for item in cast(list[list[object]], raw or []):
        if not item[1]:
            continue
        fields = pairs(cast(list[object], item[1]))
        found.append(Entry(
            city, text(item[0]), text(fields.get(b"k", b"")), bytes(fields.get(b"e", b"")),  # type: ignore[arg-type]
            text(fields.get(b"o", b"")), text(fields.get(b"c", b"")),
        ))  # fmt: skip
    return found


class WebhookStore:
    """Reads and writes webhook state through the node's store."""

    def __init__(self, store: Store, retention_ms: int) -> None:
        self.store = store
        self.retention_ms = retention_ms

    # ------------------------------------------------------------ subscriptions

    async def save(self, sub: Subscription) -> None:
        """Store a subscription (new, or changed) and count the change."""
        enabled = "1" if sub.enabled else "0"
        await self.store.call_many([
            ("HSET", keys.subscription(sub.id), "def", _encode(sub), "enabled", enabled,
             "reason", sub.disabled_reason or ""),
            ("SADD", keys.SUBSCRIPTIONS, sub.id),
            ("INCR", keys.HOOKS_SEQ),
        ])  # fmt: skip

    async def set_enabled(self, sub_id: str, enabled: bool, reason: str = "") -> None:
        await self.store.call_many([
            ("HSET", keys.subscription(sub_id), "enabled", "1" if enabled else "0",
             "reason", reason),
            ("INCR", keys.HOOKS_SEQ),
        ])  # fmt: skip

    async def delete(self, sub_id: str) -> None:
        await self.store.call_many([
            ("DEL", keys.subscription(sub_id), keys.delivery_log(sub_id),
             keys.dead_letters(sub_id)),
            ("SREM", keys.SUBSCRIPTIONS, sub_id),
            ("INCR", keys.HOOKS_SEQ),
        ])  # fmt: skip

    async def seq(self) -> int:
        return int(text(await self.store.call("GET", keys.HOOKS_SEQ) or b"0"))

    async def all(self) -> tuple[int, list[Subscription]]:
        """The change count and every subscription."""
        seq, members = await self.store.call_many(
            [("GET", keys.HOOKS_SEQ), ("SMEMBERS", keys.SUBSCRIPTIONS)]
        )
        ids = sorted(text(m) for m in cast(list[bytes], members or []))
        rows = (
            await self.store.call_many([("HGETALL", keys.subscription(i)) for i in ids])
            if ids
            else []
        )
        subs = []
        for row in rows:
            fields = decoded(pairs(cast(list[object], row)))
            if fields.get("def"):
                sub = _subscription.decode(fields["def"])
                subs.append(msgspec.structs.replace(
                    sub, enabled=fields.get("enabled") == "1",
                    disabled_reason=fields.get("reason") or None,
                ))  # fmt: skip
        return int(text(seq or b"0")), subs

    # ------------------------------------------------------------ log and dead letters

    async def _push(self, key: str, item: bytes, keep: int) -> None:
        await self.store.call_many(
            [("LPUSH", key, item), ("LTRIM", key, 0, keep - 1), ("PEXPIRE", key, self.retention_ms)]
        )

    async def log(self, sub_id: str, delivery: Delivery) -> None:
        await self._push(keys.delivery_log(sub_id), _encode(delivery), LOG_KEEP)

    async def bury(self, sub_id: str, letter: DeadLetter) -> None:
        await self._push(keys.dead_letters(sub_id), _encode(letter), DEAD_KEEP)

    async def deliveries(self, sub_id: str, limit: int) -> list[Delivery]:
        raw = await self.store.call("LRANGE", keys.delivery_log(sub_id), 0, limit - 1)
        return [_delivery.decode(item) for item in cast(list[bytes], raw or [])]

    async def dead(self, sub_id: str, limit: int) -> list[DeadLetter]:
        raw = await self.store.call("LRANGE", keys.dead_letters(sub_id), 0, limit - 1)
        return [_dead.decode(item) for item in cast(list[bytes], raw or [])]

    # ------------------------------------------------------------ the cities' streams

    async def join(self, cities: Iterable[str], start: str = "$") -> None:
        """Make the consumer group on each city's stream (from its end, so that
        no subscription gets what happened before it); one that exists stays."""
        for city in cities:
            try:
                await self.store.call("XGROUP", "CREATE", keys.stream(city), keys.STREAM_GROUP,
                                      start, "MKSTREAM")  # fmt: skip
            except StoreUnavailable as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                continue
            # A stream made here ends like one made by an event: after its keep time.
            await self.store.call("PEXPIRE", keys.stream(city), self.store.stream_keep_ms)

    async def read(self, cities: Sequence[str], consumer: str, count: int) -> list[Entry]:
        """New entries of every city for ``consumer`` (pending on it until acked).
        A stream that expired while quiet lost its group: it is made again, from
        the stream's start (everything in it is newer than the group's loss)."""
        commands = [("XREADGROUP", "GROUP", keys.STREAM_GROUP, consumer, "COUNT", count,
                     "STREAMS", keys.stream(c), ">") for c in cities]  # fmt: skip
        answers = await self.store.call_raw(commands)
        found: list[Entry] = []
        for city, answer in zip(cities, answers, strict=True):
            if isinstance(answer, Exception):
                if "NOGROUP" not in str(answer):
                    raise StoreUnavailable(f"redis refused XREADGROUP: {answer}")
                await self.join([city], "0")
            elif answer:
                found += _entries(city, cast(list[list[object]], answer)[0][1])
        return found

    async def last_ids(self, cities: Sequence[str]) -> list[str | None]:
        """The id of each city's newest stream entry (None for an empty or missing stream)."""
        answers = await self.store.call_raw(
            [("XREVRANGE", keys.stream(c), "+", "-", "COUNT", 1) for c in cities]
        )
        found: list[str | None] = []
        for answer in answers:
            rows = answer if isinstance(answer, list) else []
            found.append(text(cast(list[object], rows[0])[0]) if rows else None)
        return found

    async def skip_to(self, cities: Sequence[str], last: Sequence[str | None]) -> None:
        """Move each city's group past its entries up to ``last`` without reading them
        (no subscription wants anything): one write, instead of reading and
        acknowledging every event. A city whose group is gone is joined again
        on the next read."""
        commands = [("XGROUP", "SETID", keys.stream(c), keys.STREAM_GROUP, at)
                    for c, at in zip(cities, last, strict=True) if at]  # fmt: skip
        if commands:
            await self.store.call_raw(commands)

    async def claim_stale(self, city: str, consumer: str, idle_ms: int) -> list[Entry]:
        """Entries another consumer read and did not acknowledge for ``idle_ms``
        (its node died mid-delivery): now pending on ``consumer``."""
        try:
            raw = await self.store.call("XAUTOCLAIM", keys.stream(city), keys.STREAM_GROUP,
                                        consumer, idle_ms, "0-0", "COUNT", CLAIM_COUNT)  # fmt: skip
        except StoreUnavailable as exc:
            if "NOGROUP" in str(exc):
                return []
            raise
        return _entries(city, cast(list[object], raw)[1])

    async def ack(self, city: str, entry_id: str) -> None:
        await self.store.call("XACK", keys.stream(city), keys.STREAM_GROUP, entry_id)

    # ------------------------------------------------------------ waiting messages

    async def wait(self, city: str, msg: Waiting, due_ms: int, ttl_ms: int) -> None:
        """Keep a message for its next attempt at ``due_ms`` (Redis time)."""
        key = keys.hook_message(city, msg.id)
        await self.store.call_many([
            ("HSET", key, "sub", msg.sub, "type", msg.type, "body", msg.body,
             "attempts", msg.attempts),
            ("PEXPIRE", key, ttl_ms),
            ("ZADD", keys.hook_retries(city), due_ms, msg.id),
        ])  # fmt: skip

    async def due(self, city: str, lease_ms: int, limit: int) -> list[Waiting]:
        """Claim the messages whose next attempt is due (leased, like order timers)."""
        claim = await self.store.script(
            "claim_due", [keys.hook_retries(city)], [lease_ms, limit], replies.ClaimReply
        )
        if not claim.due:
            return []
        rows = await self.store.call_many(
            [("HGETALL", keys.hook_message(city, m)) for m in claim.due]
        )
        found, gone = [], []
        for msg_id, row in zip(claim.due, rows, strict=True):
            fields = pairs(cast(list[object], row))
            if not fields:
                gone.append(msg_id)
                continue
            found.append(Waiting(msg_id, text(fields[b"sub"]), text(fields[b"type"]),
                                 bytes(fields[b"body"]), int(text(fields[b"attempts"]))))  # type: ignore[arg-type]  # fmt: skip
        if gone:
            await self.store.call("ZREM", keys.hook_retries(city), *gone)
        return found

    async def forget(self, city: str, msg_id: str) -> None:
        await self.store.call_many([
            ("ZREM", keys.hook_retries(city), msg_id),
            ("DEL", keys.hook_message(city, msg_id)),
        ])  # fmt: skip
