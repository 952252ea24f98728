"""The invariants a chaos run must keep, checked by reading Redis directly.

Given the simulator's journal (what clients were told) and the faults that
were injected, :func:`check` reads every order and worker record the run
left and counts:

- acknowledged orders that do not exist, split into those Redis may lose by
  design (acknowledged in the second before Redis was SIGKILLed: the
  append-only file is synced every second) and the rest (a violation);
- orders neither ended nor alive (a search or an open offer without a timer,
  an assigned order its worker does not hold): stuck;
- orders assigned twice (two ``assigned`` events in one history);
- histories with a step the order table does not allow;
- workers holding more jobs than their capacity, or ``offered`` without an
  open offer;
- live followers that stayed connected from snapshot to close but did not
  see every event of the order exactly once, in order;
- workers that lost their session when their node was killed and were not
  back within ``back_within_s``.

This module knows the key layout (``server.store.keys``) and the tables
(``server.core``): it checks the server's own records, so unlike the bench
it imports ``server``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson
import redis

from server.core import order_states, worker_states
from server.store import keys

AOF_WINDOW_MS = 1500  # appendfsync everysec: up to a second, plus the time to notice


@dataclass
class Faults:
    """When each fault happened (wall-clock ms)."""

    node_kills: list[tuple[str, int]] = field(default_factory=list)  # (node id, killed at)
    redis_kills: list[int] = field(default_factory=list)
    redis_stops: list[tuple[int, int]] = field(default_factory=list)  # (stopped, continued)
    cluster: bool = False  # the Redis faults hit masters of a Redis Cluster

    def failover_windows(self) -> list[tuple[int, int]]:
        """On a cluster, when a master's writes may be lost as Redis Cluster documents:
        the second before it was killed, and a stopped master's whole stop and the
        second after it (resumed, it runs what its clients had sent, as a master,
        until it learns that its replica took over, and then drops those writes)."""
        if not self.cluster:
            return []
        kills = [(k - AOF_WINDOW_MS, k) for k in self.redis_kills]
        return kills + [(a, b + AOF_WINDOW_MS) for a, b in self.redis_stops]


@dataclass
class Findings:
    """What the check found. ``violations`` lists what breaks an invariant."""

    orders_acked: int = 0
    orders_found: int = 0
    lost: list[str] = field(default_factory=list)
    lost_in_aof_window: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    still_live: int = 0
    double_assigned: list[str] = field(default_factory=list)
    illegal_histories: list[str] = field(default_factory=list)
    over_capacity: list[str] = field(default_factory=list)
    stuck_offered: list[str] = field(default_factory=list)
    followers_whole: int = 0
    followers_wrong: list[str] = field(default_factory=list)
    followers_in_failover: list[str] = field(default_factory=list)  # see failover_windows
    killed_sessions: int = 0
    back_in_time: int = 0
    back_p50_s: float = 0.0
    back_max_s: float = 0.0
    taken_over_alive: int = 0  # nodes declared dead while running (read from their logs)
    offers_redispatched: int = 0
    longest_withdrawal_s: float = 0.0
    longest_redispatch_s: float = 0.0
    longest_search_s: float = 0.0

    @property
    def back_share(self) -> float:
        return self.back_in_time / self.killed_sessions if self.killed_sessions else 1.0

    def violations(self, back_target: float = 0.99) -> list[str]:
        found = [
            f"{len(items)} {what}"
            for what, items in (
                ("acknowledged orders lost (outside the AOF window)", self.lost),
                ("orders stuck", self.stuck),
                ("orders assigned twice", self.double_assigned),
                ("histories with an illegal step", self.illegal_histories),
                ("workers over capacity", self.over_capacity),
                ("workers offered without an open offer", self.stuck_offered),
                ("followers that missed or repeated events", self.followers_wrong),
            )
            if items
        ]
        if self.back_share < back_target:
            found.append(f"only {self.back_share:.1%} of killed nodes' workers back in time")
        return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: object) -> dict[str, str]:
    """A hash (or stream entry) read by redis-py, as text."""
    if not isinstance(raw, Mapping):
        return {}
    return {_text(k): _text(v) for k, v in raw.items()}


def _event(raw: bytes) -> dict[str, str]:
    """An event of an order's history (stored as JSON), its values as text."""
    return {k: str(v) for k, v in orjson.loads(raw).items()}


def _legal(history: Sequence[dict[str, str]]) -> bool:
    """Whether each step of a history follows the order table."""
    recorded = {name: event for event, name in order_states.RECORDED_AS.items()}
    state = order_states.INITIAL
    for entry in history[1:]:
        event = recorded.get(entry["type"])
        if event is None or order_states.TRANSITIONS[state].get(event) is None:
            return False
        state = order_states.TRANSITIONS[state][event]
        if state != entry["state"]:
            return False
    return True


class _Checker:
    def __init__(self, client: redis.Redis, cities: Iterable[str], faults: Faults) -> None:
        self.r = client
        self.cities = list(cities)
        self.kills = sorted(at for _, at in faults.node_kills)
        self.found = Findings()
        self.histories: dict[str, list[dict[str, str]]] = {}

    def orders(self) -> None:
        for city in self.cities:
            timers = {_text(m) for m in self.r.zrange(keys.timers(city), 0, -1)}
            prefix = f"d:{{{city}}}:o:"
            for key in self.r.scan_iter(match=f"{prefix}*", count=1000):
                oid = _text(key)[len(prefix) :]
                if ":" not in oid:
                    self._order(city, oid, timers)

    def _order(self, city: str, oid: str, timers: set[str]) -> None:
        f = self.found
        fields = _fields(self.r.hgetall(keys.order(keys.OrderId(oid))))
        if not fields:
            return
        f.orders_found += 1
        raw = cast(list[bytes], self.r.lrange(keys.events(keys.OrderId(oid)), 0, -1))
        history = [_event(e) for e in raw]
        self.histories[oid] = history
        if sum(e["type"] == "assigned" for e in history) > 1:
            f.double_assigned.append(oid)
        if not _legal(history) or (history and history[-1]["state"] != fields["state"]):
            f.illegal_histories.append(oid)
        self._timings(history)
        state = order_states.OrderState(fields["state"])
        if state in order_states.TERMINAL:
            return
        f.still_live += 1
        if state in order_states.SEARCHING or state in order_states.OFFER_OPEN:
            if oid not in timers:
                f.stuck.append(f"{oid} ({state}, no timer)")
            return
        jobs = _text(self.r.hget(keys.worker(city, fields.get("worker", "")), "jobs") or b"")
        if oid not in jobs.split(","):
            f.stuck.append(f"{oid} ({state}, its worker does not hold it)")

    def _timings(self, history: Sequence[dict[str, str]]) -> None:
        f = self.found
        for a, b in itertools.pairwise(history):  # time spent looking for a worker
            if order_states.OrderState(a["state"]) in order_states.SEARCHING:
                f.longest_search_s = max(f.longest_search_s, (int(b["at"]) - int(a["at"])) / 1000)
        for i, entry in enumerate(history):
            if entry.get("reason") != "worker_lost":
                continue
            f.offers_redispatched += 1
            lost_at = int(entry["at"])
            kill = max((k for k in self.kills if k <= lost_at), default=None)
            if kill is not None:  # how long the dead node's offer was held before withdrawal
                f.longest_withdrawal_s = max(f.longest_withdrawal_s, (lost_at - kill) / 1000)
            later = [e for e in history[i + 1 :] if e["type"] in ("offered", "assigned")]
            if later:
                wait = (int(later[0]["at"]) - int(entry["at"])) / 1000
                f.longest_redispatch_s = max(f.longest_redispatch_s, wait)

    def workers(self) -> None:
        f = self.found
        for city in self.cities:
            prefix = f"d:{{{city}}}:w:"
            for key in self.r.scan_iter(match=f"{prefix}*", count=1000):
                w = _fields(self.r.hgetall(key))
                wid = _text(key)[len(prefix) :]
                jobs = [j for j in w.get("jobs", "").split(",") if j]
                if len(jobs) > int(w.get("capacity", "1")):
                    f.over_capacity.append(wid)
                if w.get("state") == worker_states.WorkerState.OFFERED and not self._holds(
                    city, wid, w
                ):
                    f.stuck_offered.append(wid)

    def _holds(self, city: str, wid: str, w: dict[str, str]) -> bool:
        offer = w.get("offer", "")
        oid = keys.order_of(offer)
        if oid is None:
            return False
        o = _fields(self.r.hgetall(keys.order(oid)))
        return (
            o.get("offer") == offer
            and order_states.OrderState(o.get("state", "created")) in order_states.OFFER_OPEN
            and wid in o.get("holders", "").split(",")
        )


def check(
    client: redis.Redis,
    cities: Iterable[str],
    journal: Sequence[Mapping[str, object]],
    faults: Faults,
    back_within_s: float = 10.0,
) -> Findings:
    """Check the records in ``client`` against the journal; see the module docstring."""
    checker = _Checker(client, cities, faults)
    checker.orders()
    checker.workers()
    f = checker.found
    _acknowledged(f, client, journal, faults)
    _followers(f, journal, checker.histories, faults.failover_windows())
    _reconnects(f, journal, faults, back_within_s)
    return f


def _acknowledged(
    f: Findings, client: redis.Redis, journal: Sequence[Mapping[str, object]], faults: Faults
) -> None:
    acked = [e for e in journal if e["t"] == "order"]
    f.orders_acked = len(acked)
    for entry in acked:
        oid = keys.OrderId(str(entry["id"]))
        if client.exists(keys.order(oid)):
            continue
        at = int(entry["at"])  # type: ignore[call-overload]
        if any(0 <= kill - at <= AOF_WINDOW_MS for kill in faults.redis_kills):
            f.lost_in_aof_window.append(oid)
        else:
            f.lost.append(oid)


def _followers(
    f: Findings,
    journal: Sequence[Mapping[str, object]],
    histories: Mapping[str, Sequence[dict[str, str]]],
    windows: Sequence[tuple[int, int]] = (),
) -> None:
    for entry in journal:
        if entry["t"] != "follow" or not entry["whole"]:
            continue
        oid = str(entry["id"])
        if oid not in histories:
            continue  # lost with the AOF window: counted there
        f.followers_whole += 1
        seen = [str(e) for e in entry["events"]]  # type: ignore[attr-defined]
        stored = [e["id"] for e in histories[oid]]
        if seen == stored:
            continue
        differ = {int(e.partition("-")[0]) for e in set(seen) ^ set(stored)}
        if windows and all(any(a <= t <= b for a, b in windows) for t in differ):
            f.followers_in_failover.append(oid)  # Redis Cluster dropped the events
        else:
            f.followers_wrong.append(oid)


def _reconnects(
    f: Findings, journal: Sequence[Mapping[str, object]], faults: Faults, within_s: float
) -> None:
    backs: dict[str, list[Mapping[str, object]]] = {}
    for entry in journal:
        if entry["t"] == "back":
            backs.setdefault(str(entry["worker"]), []).append(entry)
    delays: list[float] = []
    for entry in journal:
        if entry["t"] != "lost":
            continue
        at, node = int(entry["at"]), str(entry["node"])  # type: ignore[call-overload]
        kill = next((k for n, k in faults.node_kills if n == node and -500 <= at - k <= 5000), None)
        if kill is None:
            continue
        f.killed_sessions += 1
        back = [int(b["at"]) for b in backs.get(str(entry["worker"]), []) if b["lost_at"] == at]  # type: ignore[call-overload]
        if back:
            delay = (back[0] - kill) / 1000
            delays.append(delay)
            if delay <= within_s:
                f.back_in_time += 1
    if delays:
        delays.sort()
        f.back_p50_s = delays[len(delays) // 2]
        f.back_max_s = delays[-1]
