"""Redis fixtures: the shared server, a key prefix of the test's own, transports under it.

What a test wrote under its prefix is deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as redis

from quantum_core import RedisStreamsTransport
from quantum_core.testing.brokers import BROKERS, new_namespace
from service_helpers import require


@pytest.fixture
def redis_url() -> str:
    """The shared Redis; the test must use keys under a prefix of its own."""
    return require("redis")


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of the test's own on the shared Redis, its keys deleted afterwards."""
    prefix = new_namespace()
    yield prefix
    BROKERS["redis"].clean(prefix)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A client of the shared Redis, for looking at what a test left on the server."""
    client = redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def transports(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[Callable[..., RedisStreamsTransport]]:
    """Make Redis transports under the test's own prefix; all are closed at teardown."""
    made: list[RedisStreamsTransport] = []

    def make(**options: Any) -> RedisStreamsTransport:
        transport = RedisStreamsTransport(redis_url, prefix=redis_prefix, **options)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()
