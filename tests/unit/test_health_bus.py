"""EventBusCheck: transport reachability and consumer backlog per group."""

import asyncio
import time

from quantum_core import EventBus, MemoryTransport, TransportError
from quantum_core.health import EventBusCheck, HealthChecker, HealthStatus


class UnreachableTransport(MemoryTransport):
    async def ping(self):
        raise TransportError("redis://127.0.0.1:6399 refused the connection")


async def groups_become(check, backlog, timeout=5.0):
    """Run ``check`` until the slow group's backlog is ``backlog`` (its handler has started)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result.details.get("groups", {}).get("market.data.update -> slow") == backlog:
            return result
        assert time.monotonic() < deadline, f"the backlog never became {backlog}: {result}"
        await asyncio.sleep(0.01)


async def test_reachable_bus_reports_pending_and_lag_per_group():
    release = asyncio.Event()

    async def slow(payload):
        await release.wait()

    bus = EventBus(MemoryTransport(), service_name="svc", concurrency=1)
    bus.subscribe("market.data.update", slow, name="slow")
    async with bus:
        for index in range(5):
            await bus.publish("market.data.update", {"n": index})
        healthy = await groups_become(EventBusCheck(bus), {"pending": 1, "lag": 4})
        behind = await EventBusCheck(bus, max_lag=2)()
        release.set()
    assert healthy.status is HealthStatus.HEALTHY
    assert healthy.details["running"] is True
    assert healthy.details["groups"] == {"market.data.update -> slow": {"pending": 1, "lag": 4}}
    assert behind.status is HealthStatus.DEGRADED
    assert behind.error == "consumers behind: market.data.update -> slow (lag 4 > 2)"


async def test_unreachable_transport_is_unhealthy_and_critical_by_default():
    from quantum_core.health import initialize_health_checker, shutdown_health_checker

    bus = EventBus(UnreachableTransport(), service_name="svc")
    checker = await initialize_health_checker(
        service_name="svc", check_binance=False, event_bus=bus
    )
    try:
        report = await checker.get_health_report()
    finally:
        await shutdown_health_checker()
        await bus.stop()
    result = report.dependencies["event_bus"]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error == ("transport unreachable: redis://127.0.0.1:6399 refused the connection")
    assert result.critical is True
    assert report.status is HealthStatus.UNHEALTHY


async def test_unreadable_backlog_is_degraded():
    async def broken():
        raise RuntimeError("XINFO failed")

    bus = EventBus(MemoryTransport(), service_name="svc")
    bus.backlog = broken
    async with bus, HealthChecker("svc", system=False) as checker:
        checker.register("event_bus", EventBusCheck(bus), critical=True)
        report = await checker.get_health_report()
    result = report.dependencies["event_bus"]
    assert result.status is HealthStatus.DEGRADED
    assert "RuntimeError: XINFO failed" in result.error
    assert report.status is HealthStatus.DEGRADED
