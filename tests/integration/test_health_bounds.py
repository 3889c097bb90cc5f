"""The whole report stays within its bound while every dependency hangs."""

import asyncio
import time

import pytest
import redis.asyncio as redis

from quantum_core import EventBus, MemoryTransport
from quantum_core.health import HealthStatus, initialize_health_checker, shutdown_health_checker


class BlackHole:
    """A TCP server that accepts connections and never answers, as a hung server does."""

    def __init__(self):
        self.connections = 0
        self._writers = []
        self._server = None

    async def _accept(self, reader, writer):
        self.connections += 1
        self._writers.append(writer)
        await reader.read()  # until the client goes away

    async def __aenter__(self):
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info):
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


class HangingTransport(MemoryTransport):
    async def ping(self):
        await asyncio.sleep(3600)


async def hang():
    await asyncio.sleep(3600)


@pytest.fixture(autouse=True)
async def _no_process_checker():
    yield
    await shutdown_health_checker()


async def test_report_is_bounded_while_every_dependency_hangs():
    async with BlackHole() as hole:
        client = redis.Redis(host="127.0.0.1", port=hole.port)
        bus = EventBus(HangingTransport(), service_name="svc")
        try:
            checker = await initialize_health_checker(
                service_name="svc",
                redis_client=client,
                binance_api_key="AKEY-ab12" + "k" * 55,
                binance_api_secret="s" * 64,
                binance_base_url=f"http://127.0.0.1:{hole.port}",
                postgres=f"postgresql://postgres@127.0.0.1:{hole.port}/test",
                event_bus=bus,
                checks={"custom": hang},
                default_timeout=0.5,
            )
            started = time.monotonic()
            reports = await asyncio.gather(*(checker.get_health_report() for _ in range(50)))
            elapsed = time.monotonic() - started
            connections_for_one_run = hole.connections
        finally:
            await shutdown_health_checker()
            await bus.stop()
            await client.aclose()
    assert elapsed < 2
    report = reports[0]
    assert all(other is report for other in reports)
    assert set(report.dependencies) == {"redis", "binance_rest", "postgres", "event_bus", "custom"}
    for name, result in report.dependencies.items():
        assert result.status is HealthStatus.UNHEALTHY, name
        assert result.error == "no answer within 0.5 s", name
    assert report.status is HealthStatus.UNHEALTHY
    assert report.http_status == 503
    # fifty callers, one run: one connection each for Redis, PostgreSQL and the exchange
    assert connections_for_one_run == 3
