"""The exchange check against a small local aiohttp server playing Binance."""

import asyncio
import gc
import socket
import time
import warnings
import weakref

import pytest
from aiohttp import web

from quantum_core.health import (
    BINANCE_PRODUCTION_URL,
    BINANCE_TESTNET_URL,
    BinanceRestCheck,
    HealthChecker,
    HealthStatus,
    initialize_health_checker,
    shutdown_health_checker,
)

KEY = "AKEY-ab12" + "c" * 55
SECRET = "SECRET-" + "z" * 57


class FakeBinance:
    """What the fake exchange answers, and what it was asked."""

    def __init__(self):
        self.skew_ms = 0
        self.status = 200
        self.retry_after = None
        self.time_body = None
        self.hang = False
        self.release = asyncio.Event()
        self.requests = []

    async def _common(self, request):
        self.requests.append((request.path, dict(request.headers)))
        if self.hang:
            await self.release.wait()
        if self.status != 200:
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            return web.json_response(
                {"code": -1003, "msg": "too many"}, status=self.status, headers=headers
            )
        return None

    async def ping(self, request):
        return await self._common(request) or web.json_response({})

    async def server_time(self, request):
        error = await self._common(request)
        if error is not None:
            return error
        if self.time_body is not None:
            return web.Response(body=self.time_body)
        return web.json_response({"serverTime": int(time.time() * 1000) + self.skew_ms})


@pytest.fixture(autouse=True)
async def _no_process_checker():
    yield
    await shutdown_health_checker()


@pytest.fixture
async def exchange():
    fake = FakeBinance()
    app = web.Application()
    app.router.add_get("/api/v3/ping", fake.ping)
    app.router.add_get("/api/v3/time", fake.server_time)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def report_of(check, *, timeout=2.0, critical=False):
    async with HealthChecker("svc", system=False, cache_ttl=0) as checker:
        checker.register("binance_rest", check, critical=critical, timeout=timeout)
        return await checker.get_health_report()


def test_testnet_or_production_host():
    assert BinanceRestCheck(testnet=True).base_url == BINANCE_TESTNET_URL
    assert BinanceRestCheck(testnet=False).base_url == BINANCE_PRODUCTION_URL
    assert BINANCE_TESTNET_URL == "https://testnet.binance.vision"
    assert BINANCE_PRODUCTION_URL == "https://api.binance.com"
    assert BinanceRestCheck(base_url="http://127.0.0.1:1/").base_url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="http"):
        BinanceRestCheck(base_url="ftp://user:hidden-pass@example")


async def test_reachable_exchange_with_synchronised_clock_is_healthy(exchange):
    report = await report_of(BinanceRestCheck(base_url=exchange.url, api_key=KEY))
    result = report.dependencies["binance_rest"]
    assert result.status is HealthStatus.HEALTHY, result.error
    assert result.latency_ms > 0
    assert abs(result.details["clock_skew_ms"]) < 1000
    assert result.details["endpoint"] == exchange.url
    assert result.details["key_hint"] == "AKEY-ab1****"
    assert [path for path, _ in exchange.requests] == ["/api/v3/ping", "/api/v3/time"]


async def test_the_key_is_never_sent(exchange):
    await report_of(BinanceRestCheck(base_url=exchange.url, api_key=KEY, api_secret=SECRET))
    for _, headers in exchange.requests:
        assert KEY not in str(headers)
        assert SECRET not in str(headers)
        assert "X-MBX-APIKEY" not in headers


@pytest.mark.parametrize("skew_ms", [5000, -5000])
async def test_clock_skew_over_a_second_is_degraded(exchange, skew_ms):
    exchange.skew_ms = skew_ms
    report = await report_of(BinanceRestCheck(base_url=exchange.url))
    result = report.dependencies["binance_rest"]
    assert result.status is HealthStatus.DEGRADED
    assert "clock skew" in result.error
    assert "signed requests would be rejected" in result.error
    assert abs(result.details["clock_skew_ms"] - skew_ms) < 1000
    assert report.status is HealthStatus.DEGRADED


async def test_429_is_degraded_with_retry_after_and_no_retry_storm(exchange):
    exchange.status, exchange.retry_after = 429, "7"
    check = BinanceRestCheck(base_url=exchange.url)
    async with HealthChecker("svc", system=False, cache_ttl=0) as checker:
        checker.register("binance_rest", check)
        first = (await checker.get_health_report()).dependencies["binance_rest"]
        for _ in range(5):
            again = (await checker.get_health_report()).dependencies["binance_rest"]
    assert first.status is HealthStatus.DEGRADED
    assert "HTTP 429 (rate limited)" in first.error
    assert first.details["retry_after_seconds"] == 7
    assert first.details["http_status"] == 429
    assert again.status is HealthStatus.DEGRADED
    assert 0 < again.details["retry_after_seconds"] <= 7
    assert len(exchange.requests) == 1  # the exchange was asked once, not six times


async def test_418_without_retry_after_backs_off_for_the_default(exchange):
    exchange.status = 418
    report = await report_of(BinanceRestCheck(base_url=exchange.url, default_retry_after=90))
    result = report.dependencies["binance_rest"]
    assert result.status is HealthStatus.DEGRADED
    assert "banned" in result.error
    assert result.details["retry_after_seconds"] == 90


async def test_the_exchange_is_asked_again_once_retry_after_has_passed(exchange):
    exchange.status, exchange.retry_after = 429, "0.2"
    check = BinanceRestCheck(base_url=exchange.url)
    async with HealthChecker("svc", system=False, cache_ttl=0) as checker:
        checker.register("binance_rest", check)
        await checker.get_health_report()
        exchange.status = 200
        await asyncio.sleep(0.4)
        report = await checker.get_health_report()
    assert report.dependencies["binance_rest"].status is HealthStatus.HEALTHY


async def test_server_error_is_unhealthy_but_the_exchange_is_not_critical(exchange):
    exchange.status = 503
    report = await report_of(BinanceRestCheck(base_url=exchange.url))
    result = report.dependencies["binance_rest"]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error == "GET /api/v3/ping answered HTTP 503"
    assert report.status is HealthStatus.DEGRADED
    assert report.http_status == 200


async def test_an_unexpected_time_answer_is_unhealthy(exchange):
    exchange.time_body = b"<html>maintenance</html>"
    result = (await report_of(BinanceRestCheck(base_url=exchange.url))).dependencies["binance_rest"]
    assert result.status is HealthStatus.UNHEALTHY
    assert 'expected {"serverTime": <ms>}' in result.error


async def test_a_handler_that_never_answers_is_cut_off(exchange):
    exchange.hang = True
    started = time.monotonic()
    report = await report_of(BinanceRestCheck(base_url=exchange.url), timeout=0.5)
    assert time.monotonic() - started < 2
    result = report.dependencies["binance_rest"]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error == "no answer within 0.5 s"


async def test_unreachable_exchange_fails_fast_and_clearly():
    started = time.monotonic()
    url = f"http://127.0.0.1:{closed_port()}"
    report = await report_of(BinanceRestCheck(base_url=url), timeout=2.0)
    assert time.monotonic() - started < 1.5  # refused at once, not a timeout
    result = report.dependencies["binance_rest"]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error.startswith(f"cannot reach {url}: Cannot connect to host")


async def test_criticality_of_the_exchange_is_configurable(exchange):
    exchange.status = 500
    checker = await initialize_health_checker(
        service_name="svc", binance_base_url=exchange.url, critical={"binance_rest": True}
    )
    report = await checker.get_health_report()
    assert report.status is HealthStatus.UNHEALTHY
    assert report.http_status == 503


async def test_one_session_is_reused_and_closed_without_warnings(exchange):
    check = BinanceRestCheck(base_url=exchange.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with HealthChecker("svc", system=False, cache_ttl=0) as checker:
            checker.register("binance_rest", check)
            await checker.get_health_report()
            session = check._session
            await checker.get_health_report()
            assert check._session is session
        assert session.closed
        del session, checker, check
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_a_forgotten_session_is_closed_when_the_loop_ends():
    """The guide's shutdown never closes the checker: asyncio.run's end does."""
    url = f"http://127.0.0.1:{closed_port()}"
    sessions = []

    async def forgetful():
        check = BinanceRestCheck(base_url=url)
        checker = HealthChecker("svc", system=False)
        checker.register("binance_rest", check)
        await checker.get_health_report()
        sessions.append(weakref.ref(check._session))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(forgetful())
        gc.collect()
    assert sessions
    assert sessions[0]() is None or sessions[0]().closed
    assert [str(w.message) for w in caught] == []
