"""Operations on workers: status, connect and disconnect, a dead node's
takeover, forgetting the silent, the hot location write (``locate``),
positions and booked schedules.

Each is one script or one pipelined round trip through :class:`Engine`.
Imports nothing above ``server/store/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from protocol.messages import Point, Position
from server.core.booking import Booked
from server.core.errors import Refused
from server.store import keys, replies
from server.store.arguments import ConnectArgs, packed
from server.store.engine import Engine, listed, needed
from server.store.keys import OrderId, WorkerId
from server.store.layout import WorkerField
from server.store.records import position, text
from server.store.results import Spot, WorkerRecord


class WorkerOps(Engine):
    """The store's operations on workers."""

    async def schedules(self, city: str, wids: Sequence[str]) -> dict[str, list[Booked]]:
        """Each worker's booked jobs accepted and not begun."""
        raw = await self.call_many([("HVALS", keys.schedule(city, w)) for w in wids])
        found: dict[str, list[Booked]] = {}
        for wid, values in zip(wids, raw, strict=True):
            found[wid] = []
            for value in listed(values):
                start, end, lat, lng = text(value).split()
                found[wid].append(
                    Booked(int(start), int(end), Point(lat=float(lat), lng=float(lng)))
                )
        return found

    async def set_status(self, city: str, wid: WorkerId, event: str) -> str:
        result = await self.step(
            "set_status", self._own_keys(city, wid), [wid, event], replies.StepReply
        )
        return result.state

    async def connect(
        self, city: str, wid: WorkerId, node: str, session: str, skills: Sequence[str],
        capacity: int, keep_ms: int,
    ) -> WorkerRecord:  # fmt: skip
        """Route the worker to ``node``'s ``session`` (the newest session wins);
        ``worker_blocked`` if an operator blocked it."""
        self._skills.put(f"{city}/{wid}", tuple(skills))
        r = await self.script(
            "connect", [*self._own_keys(city, wid), keys.node_workers(city, node)],
            [packed(ConnectArgs(wid, node, session, ",".join(skills), capacity, keep_ms))],
            replies.ConnectReply,
        )  # fmt: skip
        if r.blocked:
            raise Refused("worker_blocked")
        return WorkerRecord(r.state, r.offer_frame, tuple(OrderId(j) for j in r.jobs),
                            r.paused_until, tuple(OrderId(j) for j in r.booked))  # fmt: skip

    async def worker_record(self, city: str, wid: WorkerId) -> WorkerRecord:
        """The worker's state, pending offer frame and jobs, read without changing them."""
        raw = await self.call(
            "HMGET",
            keys.worker(city, wid),
            WorkerField.STATE,
            WorkerField.OFFER_FRAME,
            WorkerField.JOBS,
        )
        state, frame, jobs = (text(v) if v is not None else "" for v in listed(raw))
        return WorkerRecord(state, frame, tuple(OrderId(j) for j in jobs.split(",") if j))

    async def disconnect(self, city: str, wid: WorkerId, node: str, session: str) -> bool:
        """Unroute the worker unless a newer session holds it; whether it was unrouted."""
        result = await self.script(
            "disconnect", [*self._own_keys(city, wid), keys.node_workers(city, node)],
            [wid, node, session], replies.DoneReply,
        )  # fmt: skip
        return bool(result.done)

    async def takeover(self, city: str, dead: str) -> replies.TakeoverReply:
        """Disconnect the workers a dead node held in ``city``, withdrawing their offers."""
        return await self.script(
            "takeover", [keys.node_workers(city, dead), *keys.city_keys(city), keys.timers(city)],
            [dead], replies.TakeoverReply,
        )  # fmt: skip

    async def forget_stale(self, city: str, max_age_ms: int, limit: int = 1000) -> int:
        """Take up to ``limit`` workers not seen for ``max_age_ms`` out of the search index."""
        result = await self.script(
            "forget_stale", [keys.seen(city), *keys.city_keys(city), keys.fix_at(city)],
            [max_age_ms, limit], replies.CountReply,
        )  # fmt: skip
        return result.count

    async def locate(
        self,
        spots: Mapping[str, Mapping[str, Spot]],
        skills: Mapping[str, Sequence[str]],
        first: Mapping[str, Iterable[str]],
        on_job: Iterable[str] = (),
    ) -> None:
        """Store positions, given by city then worker: the hot write of the server (every
        location report passes here), so it is a few bulk commands in one write however
        many workers, no script. Per city: "last seen" (stamped with this node's
        estimate of Redis time), the position, the phone's time of workers ``on_job``
        (whose position their customers see), ``GEOADD XX`` on each skill's search
        index (moving only workers already in it: a late report cannot bring back a
        worker that left), and ``index.lua`` for the workers giving a ``first``
        position (a new session, or one after a silence), which puts them in the index
        if they belong there."""
        now = self.now_ms()
        shown = set(on_job)
        commands: list[tuple[object, ...]] = []
        indexing: list[tuple[int, list[str], list[str]]] = []
        for city, batch in spots.items():
            seen_args: list[object] = []
            pos_args: list[object] = []
            at_args: list[object] = []
            by_skill: dict[str, list[object]] = {}
            for worker_id, (lng, lat, at) in batch.items():
                x, y = b"%.6f" % lng, b"%.6f" % lat
                seen_args += (now, worker_id)
                pos_args += (x, y, worker_id)
                if worker_id in shown:
                    at_args += (at, worker_id)
                for skill in skills.get(worker_id, ()):
                    by_skill.setdefault(skill, []).extend((x, y, worker_id))
            commands += [("ZADD", keys.seen(city), *seen_args),
                         ("GEOADD", keys.pos(city), *pos_args)]  # fmt: skip
            if at_args:
                commands.append(("ZADD", keys.fix_at(city), *at_args))
            for skill, members in by_skill.items():
                commands.append(("GEOADD", keys.free(city, skill), "XX", *members))
            newcomers = list(first.get(city, ()))
            if newcomers:
                for wid in newcomers:
                    self._skills.put(f"{city}/{wid}", tuple(skills.get(wid, ())))
                index_keys = [keys.seen(city), *self._worker_keys(city, newcomers)]
                indexing.append((len(commands), index_keys, newcomers))
                commands.append(self._evalsha("index", index_keys, newcomers))
        if commands:
            answers = await self.call_many(commands, ("index",))
            for at, index_keys, newcomers in indexing:
                if need := needed(answers[at]):  # skills changed since this node knew them
                    await self._run("index", index_keys + need, newcomers)

    async def position(self, city: str, wid: str) -> Position | None:
        where, seen, at = await self.call_many([
            ("GEOPOS", keys.pos(city), wid),
            ("ZSCORE", keys.seen(city), wid),
            ("ZSCORE", keys.fix_at(city), wid),
        ])  # fmt: skip
        spot = listed(where)[0] if listed(where) else None
        if not spot or seen is None:
            return None
        lng, lat = (float(text(v)) for v in listed(spot))
        found = {"lng": str(lng), "lat": str(lat), "seen": text(seen), "at": text(at or seen)}
        return position(wid, found)
