"""Redis key and channel names, and the ids they are built from. The parts
of every key are :mod:`server.store.layout`'s, which the Lua scripts' key
builders are rendered from too.

Every key that one script touches carries the city as its hash tag
(``d:{city}:...``) so the same scripts run on a Redis Cluster. Order ids
embed their city (``<city>.<random>``) and offer ids their order
(``<order>/<n>``), so any node can find the keys from an id alone.
"""

from __future__ import annotations

import secrets
from typing import NewType

from protocol import ids
from server.store.layout import ROOT, CityKey, OrderKey

OrderId = NewType("OrderId", str)
OfferId = NewType("OfferId", str)
WorkerId = NewType("WorkerId", str)
City = NewType("City", str)

# The node registry: node id -> its last heartbeat (ms, Redis time). Pruned:
# a dead node is removed once its workers are taken over.
NODES = f"{ROOT}nodes"


def new_order_id(city: City) -> OrderId:
    """A fresh, unguessable order id in ``city``."""
    return OrderId(f"{city}.{secrets.token_hex(10)}")


def city_of(order_id: str) -> City | None:
    """The city an order id belongs to, or ``None`` if it is not an order id."""
    if not ids.ORDER_RE.match(order_id):
        return None
    return City(order_id.partition(".")[0])


def order_of(offer_id: str) -> OrderId | None:
    """The order an offer id belongs to, or ``None`` if it is not an offer id."""
    if not ids.OFFER_RE.match(offer_id):
        return None
    return OrderId(offer_id.partition("/")[0])


def offer_id(order_id: OrderId, attempt: int) -> OfferId:
    """The id of the ``attempt``-th offer of an order."""
    return OfferId(f"{order_id}/{attempt}")


def _tag(city: str) -> str:
    return f"{ROOT}{{{city}}}:"


def order(order_id: OrderId) -> str:
    return f"{_tag(city_of(order_id) or '')}{CityKey.ORDER}{order_id}"


def tried(order_id: OrderId) -> str:
    return f"{order(order_id)}{OrderKey.TRIED}"


def events(order_id: OrderId) -> str:
    return f"{order(order_id)}{OrderKey.HISTORY}"


def worker(city: str, worker_id: str) -> str:
    return f"{_tag(city)}{CityKey.WORKER}{worker_id}"


def geo(city: str) -> str:
    return f"{_tag(city)}{CityKey.GEO}"


def free(city: str, skill: str) -> str:
    """The search index: workers with ``skill`` who could take an order now."""
    return f"{_tag(city)}{CityKey.FREE}{skill}"


def node_workers(city: str, node: str) -> str:
    """The workers of ``city`` whose sockets are on ``node`` (for a takeover)."""
    return f"{_tag(city)}{CityKey.NODE}{node}"


def online(city: str) -> str:
    """Connected workers: worker -> ``'<node> <skills>'`` (the scripts plan from it)."""
    return f"{_tag(city)}{CityKey.ONLINE}"


def pos(city: str) -> str:
    """Where each connected (or lately connected) worker last reported itself."""
    return f"{_tag(city)}{CityKey.POS}"


def fix_at(city: str) -> str:
    """The phone's own time of each worker's last report (data, never decisions)."""
    return f"{_tag(city)}{CityKey.FIX_AT}"


def seen(city: str) -> str:
    return f"{_tag(city)}{CityKey.SEEN}"


def timers(city: str) -> str:
    return f"{_tag(city)}{CityKey.TIMERS}"


def idempotency(customer: str, key: str) -> str:
    return f"{ROOT}idem:{{{customer}}}:{key}"


def order_rate(customer: str) -> str:
    return f"{ROOT}rate:{{{customer}}}"


def stream(city: str) -> str:
    """Every order and worker event of the city, for consumers (webhook deliveries)."""
    return f"{_tag(city)}{CityKey.STREAM}"


def holds(city: str) -> str:
    """What operators hold against the city's workers: ``p:<worker>`` paused until
    (ms), ``b:<worker>`` blocked, ``c:<customer>:<worker>`` blocked for one customer
    (the value says by whom). Operator state, like the catalogue: no time to live,
    an entry goes when it is lifted (a pause also when the search finds it over)."""
    return f"{_tag(city)}{CityKey.HOLDS}"


def performance(city: str, worker_id: str) -> str:
    """A worker's performance counters, one field per day and figure
    (``r:<day>:n`` ratings, ``r:<day>:s`` their stars); days older than the
    longest window are deleted in the step that writes, and the key expires a
    window after its last write."""
    return f"{_tag(city)}{CityKey.PERF}{worker_id}"


def ledger(city: str, worker_id: str) -> str:
    """A worker's newest earnings entries (JSON each, newest first; capped), ending
    the ledger's days after its last entry."""
    return f"{_tag(city)}{CityKey.LEDGER}{worker_id}"


def book(city: str, day: int) -> str:
    """The city's earnings of one day (UTC, days since 1970-01-01):
    ``<worker>:<currency>:<reason>`` -> minor units, ``...:jobs`` -> jobs completed;
    payouts sum these."""
    return f"{_tag(city)}{CityKey.BOOK}{day}"


def schedule(city: str, worker_id: str) -> str:
    """A worker's booked jobs accepted and not begun: order -> ``'<start> <end> <lat>
    <lng>'`` (its slot in ms, where it is), ending a day after the latest slot."""
    return f"{_tag(city)}{CityKey.SCHEDULE}{worker_id}"


def order_keys(order_id: OrderId) -> list[str]:
    """The keys a script on an order declares: record, timers, tried, history, and
    the city's event stream."""
    city = city_of(order_id) or ""
    return [order(order_id), timers(city), tried(order_id), events(order_id), stream(city)]


def city_keys(city: str) -> list[str]:
    """The city's indexes, event stream and operators' holds that a script on a
    worker declares."""
    return [online(city), seen(city), pos(city), stream(city), holds(city)]


def tag_of(key: str) -> str:
    """A key's hash tag (Redis Cluster hashes only it), or the whole key without one."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else key


# The catalogue: a hash tag of its own, which no city can have ('@' is not in a name).
CATALOGUE = f"{ROOT}{{@catalogue}}:"
CATEGORY_KEYS = f"{CATALOGUE}keys"  # the key of every category ever applied
CATALOGUE_SEQ = f"{CATALOGUE}seq"  # counts changes: a node that missed one sees it differ
CATALOGUE_CHANNEL = f"{CATALOGUE}changed"  # '<key> <version> <seq>' after each change


def category(key: str) -> str:
    """A category's hash: the version in force, its definition, retired, updated."""
    return f"{CATALOGUE}c:{key}"


def category_history(key: str) -> str:
    """A category's recent versions: version -> definition (JSON)."""
    return f"{CATALOGUE}c:{key}:v"


# Webhook subscriptions: a hash tag of their own, like the catalogue's.
HOOKS = f"{ROOT}{{@hooks}}:"
SUBSCRIPTIONS = f"{HOOKS}subs"  # the id of every subscription
HOOKS_SEQ = f"{HOOKS}seq"  # counts changes to the subscriptions
STREAM_GROUP = "webhooks"  # the consumer group the deliveries read each city's stream in


def subscription(sub_id: str) -> str:
    """A subscription's hash: def (JSON), enabled (0/1), reason."""
    return f"{HOOKS}s:{sub_id}"


def delivery_log(sub_id: str) -> str:
    """A subscription's latest delivery attempts, newest first (capped)."""
    return f"{HOOKS}log:{sub_id}"


def dead_letters(sub_id: str) -> str:
    """A subscription's messages given up on, newest first (capped)."""
    return f"{HOOKS}dead:{sub_id}"


def hook_retries(city: str) -> str:
    """Webhook messages of the city waiting for their next attempt: id -> due ms."""
    return f"{_tag(city)}{CityKey.HOOK_RETRIES}"


def hook_message(city: str, message_id: str) -> str:
    """A webhook message waiting for its next attempt: sub, type, body, attempts."""
    return f"{_tag(city)}{CityKey.HOOK_MESSAGE}{message_id}"


def takeover(node: str) -> str:
    return f"{ROOT}takeover:{node}"


def node_channel(city: str, node: str) -> str:
    """Frames for the workers of ``city`` whose sockets are on ``node``. In the city's
    hash tag: with sharded pub/sub a script may publish only in its own slot."""
    return f"{_tag(city)}{CityKey.INBOX}{node}"


def order_channel(order_id: str) -> str:
    """Live events and positions of one order, in its city's hash tag."""
    return f"{_tag(city_of(order_id) or '')}{CityKey.WATCH}{order_id}"
