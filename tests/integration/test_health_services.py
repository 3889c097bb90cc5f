"""Redis and PostgreSQL checks against the real servers on loopback (never mocked)."""

import time
import uuid

import asyncpg
import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from quantum_core.health import (
    HealthChecker,
    HealthStatus,
    PostgresCheck,
    RedisCheck,
    initialize_health_checker,
    shutdown_health_checker,
)
from service_helpers import free_port, require, service_missing


@pytest.fixture(autouse=True)
async def _no_process_checker():
    yield
    await shutdown_health_checker()


@pytest.fixture
def health_redis_url():
    return require("redis")


@pytest.fixture
async def postgres_dsn():
    for user in ("postgres", "root"):
        dsn = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError):
            continue
        await connection.close()
        return dsn
    service_missing("PostgreSQL at 127.0.0.1:5432 (database test, user postgres or root)")
    return None


@pytest.mark.parametrize("decode_responses", [False, True])
async def test_redis_ping_is_healthy(health_redis_url, decode_responses):
    client = redis.from_url(health_redis_url, decode_responses=decode_responses)
    try:
        checker = await initialize_health_checker(
            service_name="svc", redis_client=client, check_binance=False
        )
        report = await checker.get_health_report()
    finally:
        await shutdown_health_checker()
        await client.aclose()
    result = report.dependencies["redis"]
    assert result.status is HealthStatus.HEALTHY, result.error
    assert result.critical is True
    assert 0 < result.latency_ms < 2000
    assert report.to_dict()["dependencies"]["redis"]["status"] == "HEALTHY"


async def test_the_checker_leaves_the_callers_redis_client_open(health_redis_url):
    client = redis.from_url(health_redis_url)
    try:
        async with HealthChecker("svc", system=False) as checker:
            checker.register("redis", RedisCheck(client), critical=True)
            await checker.get_health_report()
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_redis_where_no_server_listens_is_unhealthy_and_critical():
    client = redis.Redis(host="127.0.0.1", port=free_port())  # redis-py's default retries
    try:
        checker = await initialize_health_checker(
            service_name="svc",
            redis_client=client,
            check_binance=False,
            timeouts={"redis": 0.5},
        )
        started = time.monotonic()
        report = await checker.get_health_report()
        assert time.monotonic() - started < 2
    finally:
        await shutdown_health_checker()
        await client.aclose()
    result = report.dependencies["redis"]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error in ("no answer within 0.5 s",) or "ConnectionError" in result.error
    assert report.status is HealthStatus.UNHEALTHY
    assert report.http_status == 503


async def test_redis_without_retries_says_why_at_once():
    port = free_port()
    client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    try:
        async with HealthChecker("svc", system=False) as checker:
            checker.register("redis", RedisCheck(client), critical=True)
            result = (await checker.get_health_report()).dependencies["redis"]
    finally:
        await client.aclose()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error.startswith("ConnectionError: Error 111 connecting to 127.0.0.1:")


async def test_redis_made_non_critical_only_degrades(health_redis_url):
    client = redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        checker = await initialize_health_checker(
            service_name="svc",
            redis_client=client,
            check_binance=False,
            critical={"redis": False},
        )
        report = await checker.get_health_report()
    finally:
        await shutdown_health_checker()
        await client.aclose()
    assert report.status is HealthStatus.DEGRADED


async def test_postgres_dsn_is_healthy_and_its_password_is_never_shown(postgres_dsn):
    password = f"pw-{uuid.uuid4().hex}"  # trust auth: accepted and ignored by the server
    dsn = postgres_dsn.replace("@", f":{password}@", 1)
    checker = await initialize_health_checker(service_name="svc", postgres=dsn, check_binance=False)
    first = await checker.get_health_report()
    second = await checker.get_health_report(fresh=True)
    await shutdown_health_checker()
    for report in (first, second):
        result = report.dependencies["postgres"]
        assert result.status is HealthStatus.HEALTHY, result.error
        assert result.critical is True
        assert result.latency_ms > 0
        assert password not in str(report.to_dict())
    assert password not in repr(checker)


async def test_postgres_check_replaces_a_connection_the_server_closed(postgres_dsn):
    check = PostgresCheck(postgres_dsn)
    try:
        assert (await check()).status is HealthStatus.HEALTHY
        admin = await asyncpg.connect(postgres_dsn)
        try:
            pid = check._connection.get_server_pid()
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        result = await check()  # no false alarm: one fresh connection is tried at once
        assert result.status is HealthStatus.HEALTHY
        assert check._connection.get_server_pid() != pid
    finally:
        await check.close()


async def test_postgres_pool_is_healthy_and_stays_the_callers(postgres_dsn):
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        async with HealthChecker("svc", system=False) as checker:
            checker.register("postgres", PostgresCheck(pool), critical=True)
            result = (await checker.get_health_report()).dependencies["postgres"]
        assert result.status is HealthStatus.HEALTHY, result.error
        assert await pool.fetchval("SELECT 2") == 2  # still open
    finally:
        await pool.close()


async def test_postgres_where_no_server_listens_is_unhealthy():
    dsn = f"postgresql://postgres:hidden-pass-123@127.0.0.1:{free_port()}/test"
    checker = await initialize_health_checker(service_name="svc", postgres=dsn, check_binance=False)
    started = time.monotonic()
    report = await checker.get_health_report()
    assert time.monotonic() - started < 2.5
    result = report.dependencies["postgres"]
    assert result.status is HealthStatus.UNHEALTHY
    assert "hidden-pass-123" not in str(report.to_dict())
    assert report.status is HealthStatus.UNHEALTHY


def test_postgres_check_refuses_what_is_not_a_dsn_or_pool():
    with pytest.raises(TypeError, match="DSN string or an asyncpg pool"):
        PostgresCheck(42)
