"""Spreading a run over several processes, and preparing any process to run one.

:func:`run_processes` starts ``config.procs`` processes (the ``spawn`` method:
no event loop or socket is inherited). Each one runs
:func:`~simulator.runner.run_slice` for its share and talks back over a pipe
in JSON (never pickle): a :class:`ChildMessage` with its progress about once
a second, and one with its final measurements. The parent merges the
progress for the display and the final snapshots for the report. A process
that dies without a final message is counted as the error ``sim_process_failed``.

:func:`prepare_process` raises the open-file limit to its hard maximum (each
worker holds a socket) and returns the uvloop event loop factory when uvloop
is installed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import resource
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import msgspec
from msgspec import Struct

from simulator.display import Progress, merge_progress
from simulator.runner import run_slice
from simulator.scenario import SimConfig
from simulator.stats import Snapshot, merge_snapshots

log = logging.getLogger(__name__)


class ChildMessage(Struct):
    """What a simulator process sends its parent: progress, or its final measurements."""

    progress: Progress | None = None
    final: Snapshot | None = None
    error: str | None = None


_child_decoder = msgspec.json.Decoder(ChildMessage)


def raise_nofile_limit() -> int:
    """Raise this process's soft limit on open files to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop factory if uvloop is installed, else ``None`` (asyncio's default)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def prepare_process() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Raise the file limit and pick the event loop: call once at the start of a process."""
    limit = raise_nofile_limit()
    log.debug("open-file limit: %d", limit)
    return loop_factory()


def run_processes(
    config: SimConfig,
    on_progress: Callable[[Progress], None] | None,
    stop: threading.Event | None = None,
) -> Snapshot:
    """Run the scenario split over ``config.procs`` processes; returns the merged measurements.
    Setting ``stop`` asks every process (with SIGTERM) to skip to its closing phase."""
    ctx = multiprocessing.get_context("spawn")
    payload = msgspec.json.encode(config)
    readers: dict[Connection, int] = {}
    processes = []
    for proc in range(config.procs):
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=child_main, args=(payload, proc, writer), daemon=True)
        process.start()
        writer.close()
        readers[reader] = proc
        processes.append(process)

    def stop_all() -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    finals = _collect(readers, config.progress_interval_s, on_progress, stop, stop_all)
    for process in processes:
        process.join()
    return merge_snapshots(finals)


def _collect(
    readers: dict[Connection, int],
    interval: float,
    on_progress: Callable[[Progress], None] | None,
    stop: threading.Event | None,
    stop_all: Callable[[], None],
) -> list[Snapshot]:
    """Read the children's messages until each has sent its final one or died."""
    latest: dict[int, Progress] = {}
    finals: list[Snapshot] = []
    open_readers = dict(readers)
    next_show, fresh = time.monotonic() + interval, False
    while open_readers:
        if stop is not None and stop.is_set():
            stop_all()
            stop = None
        for reader in wait(list(open_readers), timeout=interval):
            assert isinstance(reader, Connection)
            message = _receive(reader)
            if message.progress is not None:
                latest[open_readers[reader]], fresh = message.progress, True
            if message.final is not None or message.error is not None:
                finals.append(message.final or Snapshot(errors={message.error or "": 1}))
                del open_readers[reader]
        if fresh and (time.monotonic() >= next_show or not open_readers):
            if on_progress is not None:
                on_progress(merge_progress(latest.values()))
            next_show, fresh = time.monotonic() + interval, False
    return finals


def _receive(reader: Connection) -> ChildMessage:
    try:
        return _child_decoder.decode(reader.recv_bytes())
    except (EOFError, OSError):
        return ChildMessage(error="sim_process_failed")


def child_main(payload: bytes, proc: int, writer: Connection) -> None:
    """Entry point of one simulator process (runs :func:`run_slice` for its share)."""
    # Ctrl-C reaches the whole process group; the parent decides, and sends SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s sim[{proc}] %(levelname)s %(message)s"
    )
    config = msgspec.json.decode(payload, type=SimConfig)
    factory = prepare_process()

    def send(message: ChildMessage) -> None:
        writer.send_bytes(msgspec.json.encode(message))

    def on_progress(progress: Progress) -> None:
        send(ChildMessage(progress=progress))

    try:
        final = _run(_stoppable_slice(config, proc, on_progress), factory)
        send(ChildMessage(final=final))
    except Exception as exc:
        log.exception("simulator process %d failed", proc)
        send(ChildMessage(error=f"sim_process_failed: {type(exc).__name__}"))
    finally:
        writer.close()


async def _stoppable_slice(
    config: SimConfig, proc: int, on_progress: Callable[[Progress], None]
) -> Snapshot:
    """This process's share of the run, cut short to its closing phase by SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return await run_slice(config, proc, on_progress, stop)


def _run(coro: Any, factory: Callable[[], asyncio.AbstractEventLoop] | None) -> Snapshot:
    """Run ``coro`` to completion on a fresh loop made by ``factory``."""
    with asyncio.Runner(loop_factory=factory) as runner:
        result: Snapshot = runner.run(coro)
    return result
