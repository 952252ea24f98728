"""A simulation: :func:`simulate` runs a scenario against a server and reports.

With ``procs`` 1 it runs the one slice in this process
(:func:`simulator.runner.run_slice`); with more, :mod:`simulator.procs`
spreads the slices over processes. Either way the measurements end in one
:class:`~simulator.report.Report`.

Imports ``protocol`` (through the other modules) and ``simulator`` modules, never ``server``.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from simulator import operator
from simulator.procs import run_processes
from simulator.report import Report, build_report
from simulator.runner import ProgressCallback, load_city, run_slice
from simulator.scenario import SimConfig


async def simulate(config: SimConfig, on_progress: ProgressCallback | None = None) -> Report:
    """Run the scenario against the server at ``config.url`` and return the report.

    ``on_progress`` is called about every ``config.progress_interval_s`` with
    the run's state (in this event loop's thread for one process, in a helper
    thread when ``config.procs > 1``). Cancelling the call (Ctrl-C under
    :func:`asyncio.run`) ends the run early, politely, and still returns the
    report, marked ``interrupted``; cancelling it again stops it at once.
    """
    load_city(config)  # a bad district file fails here, not in every process
    if config.categories:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
            await operator.apply_categories(config, http)
    started = time.monotonic()
    stop = asyncio.Event()
    stop_flag = threading.Event()
    if config.procs > 1:
        work = asyncio.ensure_future(
            asyncio.to_thread(run_processes, config, on_progress, stop_flag)
        )
    else:
        work = asyncio.ensure_future(run_slice(config, 0, on_progress, stop))
    try:
        snapshot = await asyncio.shield(work)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        stop.set()
        stop_flag.set()
        snapshot = await work
    return build_report(
        snapshot,
        scenario=config.name,
        seed=config.seed,
        url=config.url,
        workers=config.workers.count,
        procs=config.procs,
        duration_s=config.duration_s,
        elapsed_s=time.monotonic() - started,
    )
