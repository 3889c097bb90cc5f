"""Shared fixtures: every test starts and ends with no process-wide bus or policy store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as redis

from nats_fixtures import *  # noqa: F403  (each broker's fixtures live in their own module)
from quantum_core import (
    MemoryTransport,
    RedisStreamsTransport,
    Transport,
    shutdown_event_bus,
    shutdown_health_checker,
    shutdown_policy_store,
    trace_context,
)
from quantum_core.testing import TransportFeatures, capture_logs
from rabbitmq_fixtures import *  # noqa: F403
from service_helpers import REDIS_URL, service_missing


@pytest.fixture(autouse=True, scope="session")
def _state_outside_the_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep what quantum_core saves per user (policy snapshots) out of the real home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
        yield


@pytest.fixture(autouse=True)
async def _clean_runtime() -> AsyncIterator[None]:
    trace_context.clear()
    yield
    await shutdown_event_bus()
    await shutdown_policy_store()
    await shutdown_health_checker()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The log lines of the test as dicts (``capture_logs``); call the fixture to read them."""
    with capture_logs() as lines:
        yield lambda: list(lines)


@pytest.fixture
async def redis_url() -> str:
    """The shared Redis; the test must use keys under a prefix of its own."""
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        service_missing("Redis", exc)
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of the test's own on the shared Redis, deleted afterwards."""
    prefix = f"qc-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


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


@pytest.fixture
def memory_transport_factory() -> Callable[[], Transport]:
    """One in-memory broker shared by every 'connection' the contract opens."""
    shared = MemoryTransport()
    return lambda: shared


@pytest.fixture
def memory_transport_features() -> TransportFeatures:
    return TransportFeatures(redelivery_timeout=0.5)


@pytest.fixture
def redis_transport_factory(redis_url: str, redis_prefix: str) -> Callable[[], Transport]:
    return lambda: RedisStreamsTransport(redis_url, prefix=redis_prefix, claim_idle=1.0)


@pytest.fixture
def redis_transport_features() -> TransportFeatures:
    return TransportFeatures(redelivery_timeout=2.0)
