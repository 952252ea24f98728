"""Running one process's share of a simulation: :func:`run_slice`.

:func:`simulator.simulation.simulate` runs the whole scenario: one slice in
its own process, or several spread over processes by :mod:`simulator.procs`,
each of which runs :func:`run_slice`. A slice's run has four phases:

1. ``ramp``: the fleet connects, spread evenly over ``workers.ramp_s``;
2. ``run``: customers place orders for ``duration_s``; shifts and outages happen;
3. ``grace``: no new orders; wait up to ``grace_s`` for the open ones to end
   (orders nobody follows live are looked up over HTTP meanwhile);
4. ``closing``: close every socket, count outcomes, return the measurements.

With ``procs > 1`` the fleet and the order rate are split over that many
processes (:func:`slice_of`); each process uses its own city name
(``metro-0``, ``metro-1``, ...) so its offers always reach its own workers and
cross-side latencies are measured on one clock.

Imports ``protocol`` (through the other modules) and ``simulator`` modules, never ``server``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from functools import partial

import httpx

from simulator import operator
from simulator.city import City, CityError, default_city, load_geojson
from simulator.customers import Customers
from simulator.display import Progress
from simulator.fleet import World, build_fleet
from simulator.journal import Journal
from simulator.movement import Grid
from simulator.orders import OrderBook
from simulator.scenario import ScenarioError, SimConfig
from simulator.scheduler import Scheduler
from simulator.stats import Metrics, Snapshot, process_cpu_s
from simulator.worker import SimWorker

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]

_GRACE_POLL_S = 0.5
_REFRESH_EVERY_S = 2.0
_CLOSE_TIMEOUT_S = 5.0
_EXACT_REFRESH_LIMIT = 2_000


def load_city(config: SimConfig) -> City:
    """The scenario's city, checked against its outages; raises :class:`ScenarioError`."""
    try:
        city = load_geojson(config.districts) if config.districts else default_city()
        for outage in config.outages:
            city.district(outage.district)
    except CityError as exc:
        raise ScenarioError(str(exc)) from exc
    return city


def city_names(config: SimConfig) -> list[str]:
    """The city names the run uses on the wire (one per process): the server must serve them."""
    return [slice_of(config, proc)[0] for proc in range(config.procs)]


def slice_of(config: SimConfig, proc: int) -> tuple[str, int, float]:
    """This process's city name, number of workers and order rate."""
    n = config.procs
    count = config.workers.count // n + (1 if proc < config.workers.count % n else 0)
    name = config.city if n == 1 else f"{config.city}-{proc}"[-32:]
    return name, count, config.orders.rate_per_s / n


async def run_slice(
    config: SimConfig,
    proc: int,
    on_progress: ProgressCallback | None,
    stop: asyncio.Event | None = None,
) -> Snapshot:
    """Run this process's share of the scenario; returns what it measured.
    Setting ``stop`` skips to the closing phase, as does the first fatal error
    (:data:`simulator.stats.FATAL_ERRORS`: the report is then ``halted``)."""
    city = load_city(config)
    city_name, count, rate = slice_of(config, proc)
    stop = stop or asyncio.Event()
    metrics = Metrics(on_fatal=stop.set)  # a refused city ends the run at once
    grid = Grid(city.bbox, city.projection, config.block_m)
    journal = Journal(config.journal, proc) if config.journal else None
    world = World(
        config, city_name, city, grid, Scheduler(metrics), metrics, OrderBook(metrics),
        config.urls, journal,
    )  # fmt: skip
    workers = [SimWorker(world, p) for p in build_fleet(config, proc, count, city_name, city, grid)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    # Direct connections, like the websockets (proxy=None): a load generator talks to the server.
    client = httpx.AsyncClient(timeout=30.0, limits=limits, trust_env=False)
    async with client as http:
        customers = Customers(world, proc, http, rate)
        run = _Run(world, workers, customers, on_progress, stop)
        try:
            await run.execute()
        finally:
            if journal is not None:
                journal.close()
        await operator.count_earnings(config, city_name, http, metrics)
    world.book.settle()
    return metrics.snapshot()


class _Run:
    """The phases of one process's run, and the tasks it owns."""

    def __init__(
        self,
        world: World,
        workers: list[SimWorker],
        customers: Customers,
        on_progress: ProgressCallback | None,
        stop: asyncio.Event,
    ) -> None:
        self.world = world
        self.stop = stop
        self.workers = workers
        self.customers = customers
        self.on_progress = on_progress
        self.worker_tasks: list[asyncio.Task[None]] = []
        self.phase = "setup"
        self.started = world.scheduler.now()
        self._phase_mark = (self.started, process_cpu_s())
        config = world.config
        self.total_s = config.workers.ramp_s + config.duration_s + config.grace_s

    async def execute(self) -> None:
        """Ramp, run, grace (each cut short by ``stop``), then close."""
        phases = (("ramp", self._ramp), ("run", self._run), ("grace", self._grace))
        scheduler_task = asyncio.create_task(self.world.scheduler.run())
        progress_task = asyncio.create_task(self._report_progress())
        try:
            for phase, body in phases:
                self._enter(phase)
                if not await self._unless_stopped(body()):
                    halted = self.world.metrics.fatal is not None
                    self.world.metrics.count("halted" if halted else "interrupted")
                    break
            self._enter("closing")
            await self._refresh_assign_times()
        finally:
            await self._close()
            self.world.scheduler.stop()
            progress_task.cancel()
            await asyncio.gather(scheduler_task, progress_task, return_exceptions=True)
        self._enter("done")
        self._emit_progress()

    async def _unless_stopped(self, body: Awaitable[None]) -> bool:
        """Run ``body`` unless ``stop`` is set first (then cancel it); True if it finished."""
        work = asyncio.ensure_future(body)
        halt = asyncio.ensure_future(self.stop.wait())
        done, _ = await asyncio.wait({work, halt}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, halt):
            task.cancel()
        await asyncio.gather(work, halt, return_exceptions=True)
        if work in done:
            work.result()  # a failure in the phase is a failure of the run
        return work in done

    async def _ramp(self) -> None:
        """The fleet connects, spread evenly over ``workers.ramp_s``."""
        self._schedule_connects()
        await asyncio.sleep(self.world.config.workers.ramp_s)

    async def _run(self) -> None:
        """Shifts and outages happen while customers place orders for the duration."""
        self._schedule_shifts_and_outages()
        await self.customers.place_orders()

    def _enter(self, phase: str) -> None:
        """Switch phase: account the last one's wall and CPU time, and name its lag histogram."""
        now, cpu = self.world.scheduler.now(), process_cpu_s()
        then, cpu_then = self._phase_mark
        self.world.metrics.count(f"wall_ms_{self.phase}", round((now - then) * 1000))
        self.world.metrics.count(f"cpu_ms_{self.phase}", round((cpu - cpu_then) * 1000))
        self._phase_mark = (now, cpu)
        if phase == "run":
            # The fleet is built: move its objects out of the collector's way, so that
            # full collections do not stall the loop for a fraction of a second.
            gc.freeze()
        elif phase == "done":
            gc.unfreeze()
        self.phase = phase
        self.world.scheduler.lag_histogram = f"scheduler_lag_{phase}_ms"

    def _schedule_connects(self) -> None:
        """Start each worker's session at its slot of the ramp (a late one
        ``late_join_s`` after it: a newcomer among workers with a record)."""
        w = self.world.config.workers
        ramp, n = w.ramp_s, max(1, len(self.workers))
        start = self.world.scheduler.now()
        for i, worker in enumerate(self.workers):
            at = start + ramp * i / n + (w.late_join_s if worker.profile.late else 0.0)
            self.world.scheduler.call_at(at, partial(self._start, worker))

    def _start(self, worker: SimWorker) -> None:
        if not self.world.stopping:
            self.worker_tasks.append(asyncio.create_task(worker.run()))

    def _schedule_shifts_and_outages(self) -> None:
        config, scheduler = self.world.config, self.world.scheduler
        shift = config.workers.shift
        if shift.mean_on_s > 0:
            for worker in self.workers:
                scheduler.call_later(
                    worker.rng.expovariate(1 / shift.mean_on_s), partial(self._shift_end, worker)
                )
        for outage in config.outages:
            scheduler.call_later(outage.at_s, partial(self._outage, outage.district, outage.for_s))

    async def _shift_end(self, worker: SimWorker) -> None:
        shift = self.world.config.workers.shift
        await worker.go_off("shift")
        off = worker.rng.expovariate(1 / shift.mean_off_s) if shift.mean_off_s > 0 else 0.0
        self.world.scheduler.call_later(off, lambda: self._shift_start(worker))

    async def _shift_start(self, worker: SimWorker) -> None:
        await worker.go_on("shift")
        on = worker.rng.expovariate(1 / self.world.config.workers.shift.mean_on_s)
        self.world.scheduler.call_later(on, lambda: self._shift_end(worker))

    async def _outage(self, name: str, for_s: float) -> None:
        """Send every worker now inside district ``name`` offline (for ``for_s``, or to the end)."""
        district = self.world.city.district(name)
        hit = [w for w in self.workers if district.contains(*w.mover.latlng())]
        log.info("outage in %s: %d workers go offline", name, len(hit))
        for worker in hit:
            await worker.go_off("outage")
            if for_s > 0:
                self.world.scheduler.call_later(for_s, partial(worker.go_on, "outage"))

    async def _grace(self) -> None:
        """Wait up to ``grace_s`` for open orders to end, looking up unassigned ones nobody
        follows (a worker here reports the progress of assigned ones)."""
        loop = asyncio.get_running_loop()
        book = self.world.book
        deadline = loop.time() + self.world.config.grace_s
        next_refresh = loop.time() + _REFRESH_EVERY_S
        while loop.time() < deadline:
            if not any(book.open_orders()) and not self.customers.tasks:
                return
            if loop.time() >= next_refresh:
                await self.customers.refresh(book.waiting_orders())
                next_refresh = loop.time() + _REFRESH_EVERY_S
            await asyncio.sleep(_GRACE_POLL_S)
        await self.customers.refresh(book.waiting_orders())

    async def _refresh_assign_times(self) -> None:
        """Replace accept-ack times by the ``assigned`` events' own times, for up to a bounded
        number of orders (one GET each)."""
        inexact = [
            r for r in self.world.book.orders.values() if r.assigned_at and not r.assigned_exact
        ]
        await self.customers.refresh(inexact[:_EXACT_REFRESH_LIMIT])

    async def _close(self) -> None:
        """Stop every worker and customer task, closing sockets politely first."""
        self.world.stopping = True
        for worker in self.workers:
            worker.account()
        closing = [asyncio.create_task(w.close()) for w in self.workers if w.ws is not None]
        if closing:
            await asyncio.wait(closing, timeout=_CLOSE_TIMEOUT_S)
        tasks = [*self.worker_tasks, *self.customers.tasks, *closing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.world.config.progress_interval_s)
            self._emit_progress()

    def _emit_progress(self) -> None:
        if self.on_progress is None:
            return
        world = self.world
        self.on_progress(
            Progress(
                elapsed_s=world.scheduler.now() - self.started,
                total_s=self.total_s,
                phase=self.phase,
                workers=len(self.workers),
                connected=world.metrics.connected,
                orders=world.book.by_group(),
                orders_created=world.metrics.counters["orders_created"],
                location_reports=world.metrics.counters["location_reports"],
                recent_tta_ms=list(world.book.recent_tta),
                errors=sum(world.metrics.errors.values()),
                lag_max_ms=world.scheduler.take_lag_window(),
                cpu_s=process_cpu_s(),
            )
        )
