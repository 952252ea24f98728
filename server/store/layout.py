"""The Redis data layout, written once: the parts every key is built of, the
fields of each record (hash), and the fields of the operators' holds.

:mod:`server.store.keys` builds keys from these parts, :mod:`server.store.records`
reads and writes records by these fields, and the Lua scripts name them as key
builders (``worker_key(prefix, id)``) and fields (``O.state``), which
:mod:`server.store.scripts` writes in when it renders them; no script spells a key
part or a field: ``tests/store/test_scripts.py`` fails on one that does. A value here is the data
itself: changing one changes what is in Redis, and nothing migrates existing data.

Imports nothing (the store's modules and the renderer import it).
"""

from __future__ import annotations

from typing import Final

# Every key starts with ROOT. A city's keys then carry the city as their hash tag,
# ``d:{city}:``, so one script touches one slot of a Redis Cluster.
ROOT: Final = "d:"


class CityKey:
    """The part of a city's key after ``d:{city}:``; one that ends with ':' is
    followed by an id (an order, a worker, a skill, a node, a day)."""

    ORDER = "o:"  # hash: an order's record (OrderField)
    WORKER = "w:"  # hash: a worker's record (WorkerField)
    GEO = "geo"
    FREE = "free:"  # geo set per skill: the search index of who could take an order now
    NODE = "node:"  # set: the workers whose sockets are on a node
    ONLINE = "online"  # hash: connected worker -> '<node> <skills>'
    POS = "pos"  # geo set: where each worker last reported itself
    FIX_AT = "fix_at"  # sorted set: the phone's time of each worker's last report
    SEEN = "seen"  # sorted set: worker -> last seen (ms)
    TIMERS = "timers"  # sorted set: order -> due (ms)
    STREAM = "events"  # stream: every order and worker event of the city
    HOLDS = "holds"  # hash: what operators hold against workers (HoldField)
    PERF = "perf:"  # hash: a worker's per-day performance counters (PerfField and counters)
    LEDGER = "ledger:"  # list: a worker's newest earnings entries
    BOOK = "book:"  # hash per day: the city's earnings by worker, currency and reason
    SCHEDULE = "sched:"  # hash: a worker's booked jobs accepted and not begun
    HOOK_RETRIES = "hooks:due"
    HOOK_MESSAGE = "hooks:m:"
    INBOX = "inbox:"  # channel: frames for a node's workers of the city
    WATCH = "watch:"  # channel: live events of one order


class OrderKey:
    """An order's keys beside its record: the record's key, then one of these."""

    HISTORY = ":ev"  # list: the order's events (JSON)
    TRIED = ":tried"  # set: the workers offered the order


class OrderField:
    """The fields of an order's record (``d:{city}:o:<order>``)."""

    # as created (records.order_fields, records.category_fields, records.policy_fields)
    ID = "id"
    CITY = "city"
    SKILL = "skill"
    CUSTOMER = "customer"
    MODE = "mode"
    PICKUP_LAT = "plat"
    PICKUP_LNG = "plng"
    DROPOFF_LAT = "dlat"
    DROPOFF_LNG = "dlng"
    NOTE = "note"
    SLOT_START = "sls"
    SLOT_END = "sle"
    DISPATCH_AT = "dat"  # a booked order's dispatch begins (ms)
    REMIND_MS = "rems"  # how long before its slot a booked job begins
    CATEGORY = "cat"
    CATEGORY_VERSION = "catv"
    ATTRIBUTES = "attrs"
    QUOTE = "quote"
    STEPS = "steps"
    CANCELLATION = "cancel"
    EARNINGS = "earn"
    SKILLS = "skills"  # the further skills a worker needs
    STEPS_SKIPPED = "wskip"
    CODE = "code"
    RADII = "radii"  # the category's dispatch policy, pinned
    OFFER_TIMEOUT_MS = "otms"
    MAX_DISPATCH_MS = "maxms"
    BROADCAST_SIZE = "bsize"
    UNITS = "units"
    ARRIVE_WITHIN_MS = "prom"
    RANKING = "rank"
    # set by the scripts
    STATE = "state"
    DISPATCH_VERSION = "dv"
    CREATED = "created"
    KEEP_MS = "keep"
    LAST_EVENT = "ev"
    OFFER = "offer"
    HOLDERS = "holders"
    OFFER_EXPIRES = "exp"
    OFFER_SENT = "osent"
    WORKER = "worker"
    ACCEPTED = "acc"
    ACCEPT_DISTANCE = "adist"
    BOOKING_DUE = "bdue"
    BOOKING_BEGUN = "bact"
    STEP = "wstep"  # the pending workflow step
    STEP_TIMER_MS = "wtms"  # the first step's timer, pinned
    STEP_DUE = "wdue"
    STEPS_DONE = "wdone"
    DISPATCH_FROM = "dfrom"
    URGENT = "prio"
    PAID = "paid"
    RATING = "rating"
    RATING_COMMENT = "rcomment"
    TIP = "tip"


class WorkerField:
    """The fields of a worker's record (``d:{city}:w:<worker>``)."""

    ID = "id"
    STATE = "state"
    NODE = "node"
    SESSION = "sid"
    SKILLS = "skills"
    CAPACITY = "capacity"
    KEEP_MS = "keep"
    OFFER = "offer"
    OFFER_FRAME = "offer_frame"
    OFFER_DISTANCE = "odist"
    JOBS = "jobs"
    LOAD = "load"


class PerfField:
    """The fields of a worker's performance counters beside the per-day counters
    (``<kind>:<day>:<figure>``, server/store/performance.py)."""

    DAY = "day"  # the day last counted
    LAST_JOB = "last"  # when its last job was completed (ms)


class PerfKind:
    """What a performance counter counts: its field is ``<kind>:<day>:<figure>``
    (server/store/performance.py reads them, lua/lib/tally.lua writes them)."""

    OFFERED = "o"
    ACCEPTED = "a"
    REJECTED = "j"
    EXPIRED = "x"  # offers that expired unanswered
    ARRIVED = "t"  # arrivals timed against the category's promise
    HANDED_BACK = "h"  # one field per order: its figure is the order id (1, or 0 waived)
    RATED = "r"
    EARNED = "e"  # its figure is '<currency>:<reason>'


class PerfFigure:
    """The figure of a performance counter."""

    COUNT = "n"
    MS = "ms"  # how long the answers took since the offers were sent
    ON_TIME = "ok"
    STARS = "s"


class CategoryField:
    """The fields of a category's hash (``d:{@catalogue}:c:<key>``)."""

    VERSION = "version"
    DEFINITION = "def"
    RETIRED = "retired"
    UPDATED = "updated"
    BY = "by"


class HoldField:
    """The fields of a city's holds hash: one of these, then the worker (a customer's
    block: the customer, ':', then the worker)."""

    PAUSED = "p:"  # -> paused until (ms)
    BLOCKED = "b:"  # -> by whom
    BLOCKED_FOR = "c:"  # -> by whom


# A day book's field of a worker's jobs completed: '<worker>:<currency>:jobs' (its
# other fields end with an earning's reason; server/store/earnings.py reads them).
BOOK_JOBS: Final = "jobs"


def members(record: type) -> dict[str, str]:
    """A layout class's names and values: ``{"STATE": "state", ...}``."""
    return {k: v for k, v in vars(record).items() if k.isupper() and isinstance(v, str)}
