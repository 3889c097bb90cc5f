"""SystemCheck: real CPU figures from the first call, thresholds, never UNHEALTHY alone."""

import asyncio
import threading
import time
from collections import namedtuple

import psutil
import pytest

from quantum_core.health import HealthChecker, HealthStatus, SystemCheck, SystemThresholds
from quantum_core.health import checks as checks_module

Times = namedtuple("Times", "user nice system idle iowait guest guest_nice")


def burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_first_answer_is_a_measurement_not_zero():
    """psutil.cpu_percent(interval=None) answers 0.0 at first; ours measures a window."""
    check = SystemCheck()
    burner = threading.Thread(target=burn, args=(0.5,))
    burner.start()
    try:
        result = await check()
    finally:
        burner.join()
    assert result.details["cpu_percent"] > 0


async def test_cpu_is_computed_from_cpu_times_deltas(monkeypatch):
    samples = iter(
        [
            Times(user=100, nice=0, system=0, idle=100, iowait=0, guest=0, guest_nice=0),
            # +30 busy (10 of it guest, already inside user), +10 idle, +10 iowait
            Times(user=125, nice=0, system=5, idle=110, iowait=10, guest=10, guest_nice=0),
        ]
    )
    monkeypatch.setattr(checks_module.psutil, "cpu_times", lambda: next(samples))
    check = SystemCheck(cpu_window=0.01)
    result = await check()
    assert result.details["cpu_percent"] == 60.0  # 30 busy of 50


async def test_a_second_call_inside_the_window_reuses_the_last_figure(monkeypatch):
    calls = 0
    real = psutil.cpu_times

    def counting():
        nonlocal calls
        calls += 1
        return real()

    monkeypatch.setattr(checks_module.psutil, "cpu_times", counting)
    check = SystemCheck(cpu_window=0.05)
    first = await check()
    second = await check()  # immediately: no new sample, no wait
    assert calls == 2
    assert second.details["cpu_percent"] == first.details["cpu_percent"]


async def test_the_cpu_window_never_blocks_the_loop():
    check = SystemCheck(cpu_window=0.3)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await check()
    task.cancel()
    assert ticks >= 5  # the loop kept running while CPU was measured


async def test_thresholds_make_the_host_degraded_never_unhealthy():
    busy = SystemCheck(SystemThresholds(cpu_percent=0, memory_percent=0, disk_percent=0))
    async with HealthChecker("svc", system=busy) as checker:
        report = await checker.get_health_report()
    assert report.system.status is HealthStatus.DEGRADED
    assert report.system.error.startswith("host busy: cpu ")
    assert "memory" in report.system.error
    assert "disk" in report.system.error
    assert report.status is HealthStatus.DEGRADED
    assert report.http_status == 200
    assert report.to_dict()["system"]["error"] == report.system.error


async def test_no_threshold_means_never_degraded_for_that_metric():
    calm = SystemCheck(SystemThresholds(cpu_percent=None, memory_percent=None, disk_percent=None))
    result = await calm()
    assert result.status is HealthStatus.HEALTHY


async def test_a_failing_host_check_degrades_unless_made_critical():
    broken = SystemCheck(disk_path="/no/such/filesystem")
    async with HealthChecker("svc", system=broken, cache_ttl=0) as checker:
        report = await checker.get_health_report()
        assert report.system.status is HealthStatus.UNHEALTHY
        assert "FileNotFoundError" in report.system.error
        assert report.status is HealthStatus.DEGRADED
        checker.configure("system", critical=True)
        assert (await checker.get_health_report()).status is HealthStatus.UNHEALTHY


def test_system_can_be_left_out():
    assert "system" not in HealthChecker("svc", system=False).check_names


@pytest.mark.parametrize("path", ["/"])
async def test_disk_path_is_measured(path):
    result = await SystemCheck(disk_path=path)()
    assert result.details["disk_percent"] == pytest.approx(psutil.disk_usage(path).percent, abs=5)
