"""HealthChecker: aggregation, time bounds, single flight, cache, liveness, closing."""

import asyncio
import gc
import json
import subprocess
import sys
import time
import warnings

import pytest

import quantum_core
from quantum_core.health import (
    HEALTH_JSON_MEDIA_TYPE,
    CheckResult,
    HealthChecker,
    HealthReport,
    HealthStatus,
    SystemCheck,
    SystemThresholds,
    get_health_checker,
    initialize_health_checker,
    shutdown_health_checker,
)
from quantum_core.health.checker import HealthChecker as CheckerFromModule

H, D, U = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY


@pytest.fixture(autouse=True)
async def _no_process_checker():
    yield
    await shutdown_health_checker()


def returning(outcome):
    async def check():
        return outcome

    return check


class Counting:
    """A check that counts its runs and takes ``delay`` seconds."""

    def __init__(self, delay=0.0, outcome=None):
        self.calls = 0
        self.delay = delay
        self.outcome = outcome

    async def __call__(self):
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.outcome


async def hang():
    await asyncio.sleep(3600)


def test_checker_is_importable_from_its_module():
    assert CheckerFromModule is HealthChecker


async def test_every_report_names_the_applications_version_and_the_librarys():
    calm_host = SystemCheck(SystemThresholds(None, None, None))
    async with HealthChecker("quantum_trader", version="2.0.0", system=calm_host) as checker:
        checker.register("redis", returning(CheckResult.healthy(1.2)), critical=True)
        ready = await checker.readiness()
        live = checker.liveness()
    for report in (ready, live):
        assert report.version == "2.0.0"
        assert report.to_dict()["version"] == "2.0.0"
        assert report.to_dict()["quantum_core_version"] == quantum_core.__version__
    ietf = ready.to_ietf()
    assert ietf["version"] == "2.0.0"
    assert ietf["notes"] == [f"quantum_core {quantum_core.__version__}"]
    assert "version" not in HealthReport("svc", H, None, ready.timestamp, 0, 0, {}).to_ietf()


async def test_initialize_health_checker_passes_the_version_on():
    checker = await initialize_health_checker(
        "quantum_trader", version="2.0.0+build.7", check_binance=False
    )
    assert checker.liveness().to_dict()["version"] == "2.0.0+build.7"


@pytest.mark.parametrize("version", ["", "2.0 beta", 2, "x" * 65])
def test_a_version_that_is_not_a_short_word_is_refused(version):
    with pytest.raises(ValueError, match=r"^version must be a non-empty string"):
        HealthChecker("quantum_trader", version=version)


async def test_report_has_the_guides_shape():
    calm_host = SystemCheck(SystemThresholds(None, None, None))  # a busy CI host stays HEALTHY
    async with HealthChecker("quantum_trader", system=calm_host) as checker:
        checker.register("redis", returning(CheckResult.healthy(1.2)), critical=True)
        report = await checker.get_health_report()
    body = report.to_dict()
    assert json.loads(json.dumps(body)) == body  # plain JSON
    assert body["service"] == "quantum_trader"
    assert body["status"] == "HEALTHY"
    assert body["uptime_seconds"] >= 0
    assert body["version"] is None  # the application gave none
    assert body["quantum_core_version"] == quantum_core.__version__
    assert body["timestamp"].endswith("Z")
    assert body["dependencies"] == {
        "redis": {"status": "HEALTHY", "latency_ms": 1.2, "critical": True}
    }
    system = body["system"]
    assert system["status"] == "HEALTHY"
    assert {"cpu_percent", "memory_percent", "disk_percent"} <= system.keys()
    assert report.http_status == 200


@pytest.mark.parametrize(
    ("critical", "status", "expected"),
    [
        (True, H, H),
        (True, D, D),
        (True, U, U),
        (False, H, H),
        (False, D, D),
        (False, U, D),
    ],
)
async def test_criticality_decides_what_a_failure_does(critical, status, expected):
    async with HealthChecker("svc", system=False) as checker:
        checker.register("ok", returning(True), critical=True)
        checker.register("dep", returning(CheckResult(status, error="why")), critical=critical)
        report = await checker.get_health_report()
    assert report.dependencies["dep"].status is status
    assert report.status is expected
    assert report.http_status == (503 if expected is U else 200)


async def test_worst_wins_across_checks():
    async with HealthChecker("svc", system=False) as checker:
        checker.register("a", returning(D))
        checker.register("b", returning(CheckResult.unhealthy("down")), critical=True)
        checker.register("c", returning(None))
        assert (await checker.get_health_report()).status is U


async def test_configure_changes_criticality_and_invalidates_the_cache():
    async with HealthChecker("svc", system=False, cache_ttl=60) as checker:
        checker.register("exchange", returning(False))
        assert (await checker.get_health_report()).status is D
        checker.configure("exchange", critical=True)
        assert (await checker.get_health_report()).status is U


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        (None, H, None),
        (True, H, None),
        (False, U, "the check returned False"),
        (D, D, "the check reported DEGRADED"),
        (CheckResult.degraded("slow", 7.0, queue=3), D, "slow"),
        ("yes", U, "the check returned str; expected a CheckResult"),
    ],
)
async def test_what_a_check_returns_is_understood(outcome, status, error):
    async with HealthChecker("svc", system=False) as checker:
        checker.register("dep", returning(outcome))
        result = (await checker.get_health_report()).dependencies["dep"]
    assert result.status is status
    if error is None:
        assert result.error is None
    else:
        assert result.error.startswith(error)
    assert result.latency_ms is not None


async def test_details_are_shown_beside_the_status_but_cannot_override_it():
    result = CheckResult.degraded("slow", 7.0, queue=3, status="HEALTHY")
    async with HealthChecker("svc", system=False) as checker:
        checker.register("dep", returning(result))
        entry = (await checker.get_health_report()).to_dict()["dependencies"]["dep"]
    assert entry == {
        "status": "DEGRADED",
        "latency_ms": 7.0,
        "error": "slow",
        "critical": False,
        "queue": 3,
    }


async def test_an_exception_is_an_unhealthy_result_with_its_message():
    async def broken():
        raise ConnectionRefusedError("connection refused by 10.0.0.1:6379")

    async with HealthChecker("svc", system=False) as checker:
        checker.register("dep", broken, critical=True)
        report = await checker.get_health_report()
    assert report.status is U
    assert report.dependencies["dep"].error == (
        "ConnectionRefusedError: connection refused by 10.0.0.1:6379"
    )
    assert report.failing == {"dep": report.dependencies["dep"].error}


async def test_a_hanging_check_is_cut_off_at_its_timeout():
    async with HealthChecker("svc", system=False, default_timeout=5) as checker:
        checker.register("slow", hang, critical=True, timeout=0.2)
        checker.register("fast", returning(True))
        started = time.monotonic()
        report = await checker.get_health_report()
        elapsed = time.monotonic() - started
    assert elapsed < 2
    assert report.dependencies["slow"].status is U
    assert report.dependencies["slow"].error == "no answer within 0.2 s"
    assert report.dependencies["fast"].status is H
    assert report.status is U


async def test_checks_run_concurrently():
    async with HealthChecker("svc", system=False) as checker:
        for index in range(10):
            checker.register(f"dep{index}", Counting(delay=0.3))
        started = time.monotonic()
        report = await checker.get_health_report()
        assert time.monotonic() - started < 2  # ten 0.3 s checks one after another: 3 s
    assert report.status is H


async def test_a_check_that_ignores_cancellation_is_abandoned_and_not_restarted():
    release = asyncio.Event()
    runs = 0

    async def stubborn():
        nonlocal runs
        runs += 1
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # misbehaves on purpose

    async with HealthChecker("svc", system=False, default_timeout=0.2) as checker:
        checker.register("stubborn", stubborn, critical=True)
        started = time.monotonic()
        first = await checker.get_health_report()
        second = await checker.get_health_report(fresh=True)
        assert time.monotonic() - started < 2
        release.set()
    assert first.dependencies["stubborn"].error == "no answer within 0.2 s"
    assert "still running" in second.dependencies["stubborn"].error
    assert second.status is U
    assert runs == 1


async def test_fifty_concurrent_callers_share_one_run():
    check = Counting(delay=0.2)
    async with HealthChecker("svc", system=False) as checker:
        checker.register("dep", check)
        reports = await asyncio.gather(*(checker.get_health_report() for _ in range(50)))
    assert check.calls == 1
    assert all(report is reports[0] for report in reports)


async def test_fresh_callers_also_share_a_run_in_progress():
    check = Counting(delay=0.2)
    async with HealthChecker("svc", system=False) as checker:
        checker.register("dep", check)
        await asyncio.gather(*(checker.get_health_report(fresh=True) for _ in range(20)))
    assert check.calls == 1


async def test_reports_are_cached_for_cache_ttl():
    check = Counting()
    async with HealthChecker("svc", system=False, cache_ttl=0.3) as checker:
        checker.register("dep", check)
        first = await checker.get_health_report()
        assert await checker.get_health_report() is first
        assert check.calls == 1
        await asyncio.sleep(0.5)
        assert await checker.get_health_report() is not first
        assert check.calls == 2
        await checker.get_health_report(fresh=True)
        assert check.calls == 3


async def test_cache_ttl_zero_runs_every_time():
    check = Counting()
    async with HealthChecker("svc", system=False, cache_ttl=0) as checker:
        checker.register("dep", check)
        await checker.get_health_report()
        await checker.get_health_report()
    assert check.calls == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_run_for_others():
    check = Counting(delay=0.3)
    async with HealthChecker("svc", system=False) as checker:
        checker.register("dep", check)
        impatient = asyncio.create_task(checker.get_health_report())
        patient = asyncio.create_task(checker.get_health_report())
        for _ in range(1000):  # until the shared run has started
            if check.calls:
                break
            await asyncio.sleep(0)
        assert check.calls == 1
        impatient.cancel()
        report = await patient
    assert impatient.cancelled()
    assert report.dependencies["dep"].status is H
    assert check.calls == 1


async def test_liveness_touches_no_dependency():
    check = Counting()
    async with HealthChecker("svc") as checker:
        checker.register("dep", check, critical=True)
        live = checker.liveness()
    assert check.calls == 0
    assert live.status is H
    assert live.http_status == 200
    assert live.dependencies == {}
    assert "system" not in live.to_dict()


async def test_readiness_checks_dependencies():
    async with HealthChecker("svc", system=False) as checker:
        checker.register("redis", returning(False), critical=True)
        ready = await checker.readiness()
    assert ready.status is U
    assert ready.http_status == 503


async def test_ietf_format():
    async with HealthChecker("svc") as checker:
        checker.register("redis", returning(CheckResult.healthy(1.0)), critical=True)
        checker.register("binance_rest", returning(CheckResult.unhealthy("unreachable")))
        report = await checker.get_health_report()
    body = report.to_ietf()
    assert json.loads(json.dumps(body)) == body
    assert HEALTH_JSON_MEDIA_TYPE == "application/health+json"
    assert body["status"] == "warn"
    assert body["serviceId"] == "svc"
    assert body["checks"]["redis:responseTime"][0]["status"] == "pass"
    assert body["checks"]["redis:responseTime"][0]["observedValue"] == 1.0
    failing = body["checks"]["binance_rest:responseTime"][0]
    assert failing["status"] == "fail"
    assert failing["output"] == "unreachable"
    assert "binance_rest: unreachable" in body["output"]
    for metric in ("cpu", "memory", "disk"):
        (entry,) = body["checks"][f"{metric}:utilization"]
        assert entry["observedUnit"] == "percent"
        assert entry["componentType"] == "system"


@pytest.mark.parametrize(
    ("status", "ietf", "http"), [(H, "pass", 200), (D, "warn", 200), (U, "fail", 503)]
)
def test_status_mappings(status, ietf, http):
    assert status.ietf == ietf
    report = HealthReport("svc", status, "1", _now(), 0.0, 0.0, {})
    assert report.http_status == http
    assert report.to_ietf()["status"] == ietf


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_register_refuses_what_cannot_work():
    checker = HealthChecker("svc", system=False)
    checker.register("dep", returning(True))
    with pytest.raises(ValueError, match="already registered"):
        checker.register("dep", returning(True))
    with pytest.raises(ValueError, match="other than 'system'"):
        checker.register("system", returning(True))
    with pytest.raises(ValueError, match="non-empty"):
        checker.register(" ", returning(True))
    with pytest.raises(TypeError, match="async callable"):
        checker.register("other", "not callable")
    with pytest.raises(ValueError, match="seconds > 0"):
        checker.register("other", returning(True), timeout=0)
    with pytest.raises(KeyError, match="no health check named 'nope'"):
        checker.configure("nope", critical=True)
    with pytest.raises(ValueError, match="default_timeout"):
        HealthChecker("svc", default_timeout=float("inf"))
    with pytest.raises(ValueError, match="cache_ttl"):
        HealthChecker("svc", cache_ttl=-1)
    with pytest.raises(ValueError, match="service_name"):
        HealthChecker("")


async def test_close_closes_checks_is_idempotent_and_ends_reports():
    closed = []

    class Closable:
        async def __call__(self):
            return True

        async def close(self):
            closed.append(True)

    checker = HealthChecker("svc", system=False)
    checker.register("dep", Closable())
    await checker.get_health_report()
    await checker.close()
    await checker.close()
    assert closed == [True]
    assert "closed" in repr(checker)
    with pytest.raises(RuntimeError, match="closed"):
        await checker.get_health_report()


async def test_status_changes_are_logged_once(log_lines):
    healthy = True

    async def flapping():
        if healthy:
            return True
        raise RuntimeError("gone")

    async with HealthChecker("svc", system=False, cache_ttl=0) as checker:
        checker.register("dep", flapping, critical=True)
        await checker.get_health_report()
        healthy = False
        await checker.get_health_report()
        await checker.get_health_report()
        healthy = True
        await checker.get_health_report()
    events = [(line["event"], line["level"]) for line in log_lines() if line["level"] != "debug"]
    assert events == [
        ("health_status_changed", "info"),
        ("health_check_not_healthy", "warning"),
        ("health_status_changed", "warning"),
        ("health_check_recovered", "info"),
        ("health_status_changed", "info"),
    ]
    failure = log_lines.named("health_check_not_healthy")[0]
    assert failure["check"] == "dep"
    assert failure["error"] == "RuntimeError: gone"
    assert failure["critical"] is True


async def test_process_wide_checker_lifecycle():
    with pytest.raises(RuntimeError, match="not initialized"):
        get_health_checker()
    checker = await initialize_health_checker(service_name="svc", check_binance=False)
    assert get_health_checker() is checker
    with pytest.raises(RuntimeError, match="already initialized"):
        await initialize_health_checker(service_name="svc")
    await shutdown_health_checker()
    await shutdown_health_checker()
    with pytest.raises(RuntimeError, match="not initialized"):
        get_health_checker()


async def test_initialize_refuses_unknown_check_names_and_stays_uninitialized():
    with pytest.raises(ValueError, match="no health check named 'redis'"):
        await initialize_health_checker(service_name="svc", critical={"redis": True})
    with pytest.raises(RuntimeError, match="not initialized"):
        get_health_checker()


async def test_initialize_with_custom_checks_criticality_and_timeouts():
    checker = await initialize_health_checker(
        service_name="svc",
        check_binance=False,
        checks={"queue": hang, "cache": returning(True)},
        critical={"queue": True, "system": False},
        timeouts={"queue": 0.2},
    )
    report = await checker.get_health_report()
    assert report.dependencies["queue"].error == "no answer within 0.2 s"
    assert report.dependencies["cache"].status is H
    assert report.status is U


def test_the_loop_shutting_down_closes_what_close_was_not_called_for():
    """An application that never calls close(): asyncio.run's end closes the checks."""
    closed = []

    class Closable:
        async def __call__(self):
            return True

        async def close(self):
            closed.append(True)

    async def forgetful():
        checker = HealthChecker("svc", system=False)
        checker.register("dep", Closable())
        await checker.get_health_report()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(forgetful())
        gc.collect()
    assert closed == [True]
    assert [str(w.message) for w in caught] == []


def test_importing_health_loads_neither_aiohttp_nor_asyncpg():
    code = (
        "import sys, quantum_core.health; "
        "loaded = [m for m in ('aiohttp', 'asyncpg') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
