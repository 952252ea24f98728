"""The supervisor of the node's loops: a loop that dies is started again; one that keeps
dying fails the node, loudly, instead of leaving a silent zombie."""

from __future__ import annotations

import asyncio

import pytest

from server.loops.supervisor import Supervisor


async def _until(check: object, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_loop_that_raises_is_restarted(caplog: pytest.LogCaptureFixture) -> None:
    """A loop that raises once is logged with its traceback and runs again."""
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    fatal: list[str] = []
    supervisor = Supervisor(fatal.append)
    supervisor.start("flaky", flaky)
    await _until(lambda: len(runs) == 2)
    assert supervisor.states["flaky"] == "running" and supervisor.restarts["flaky"] == 1
    assert supervisor.problems() == [] and fatal == []
    assert "background loop flaky failed" in caplog.text and "boom" in caplog.text
    await supervisor.stop()


async def test_a_loop_that_returns_counts_as_failed() -> None:
    """Loops run until cancelled: one that returns is restarted like one that raised."""
    runs: list[int] = []

    async def quits() -> None:
        runs.append(1)
        if len(runs) > 1:
            await asyncio.Event().wait()

    supervisor = Supervisor(lambda reason: None)
    supervisor.start("quits", quits)
    await _until(lambda: len(runs) == 2)
    assert supervisor.restarts["quits"] == 1
    await supervisor.stop()


async def test_a_loop_that_keeps_failing_fails_the_node() -> None:
    """Past max_restarts within the window the loop is given up, /readyz shows it, and the
    node's fatal callback is told why."""

    async def broken() -> None:
        raise ValueError("always")

    fatal: list[str] = []
    supervisor = Supervisor(fatal.append, max_restarts=2, window_s=60)
    supervisor.start("broken", broken)
    await _until(lambda: bool(fatal))
    assert supervisor.states["broken"] == "failed"
    assert supervisor.problems() == ["loop broken is failed"]
    assert "broken failed 3 times" in fatal[0]
    await supervisor.stop()


async def test_stop_cancels_the_loops() -> None:
    """stop() cancels every loop and waits for it; nothing is left running."""
    cancelled = asyncio.Event()

    running = asyncio.Event()

    async def forever() -> None:
        try:
            running.set()
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    supervisor = Supervisor(lambda reason: None)
    supervisor.start("forever", forever)
    await running.wait()
    await supervisor.stop()
    assert cancelled.is_set() and supervisor.states == {}
