"""The process-wide HealthChecker, as the guide wires it: initialize once, get anywhere.

``initialize_health_checker`` never fails because a dependency is down (nothing is
contacted until the first report: a report is how a dependency being down is told); it
fails only for arguments that could never work, so a typo is found at startup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._exchange import BinanceRestCheck
from .checker import HealthCheck, HealthChecker
from .checks import (
    EventBusCheck,
    PostgresCheck,
    RedisCheck,
    SupportsPing,
    SystemCheck,
    SystemThresholds,
)

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["get_health_checker", "initialize_health_checker", "shutdown_health_checker"]

_checker: HealthChecker | None = None


async def initialize_health_checker(
    service_name: str,
    redis_client: SupportsPing | None = None,
    binance_api_key: str | None = None,
    binance_api_secret: str | None = None,
    binance_testnet: bool = True,
    *,
    version: str | None = None,
    binance_base_url: str | None = None,
    check_binance: bool = True,
    postgres: Any = None,
    event_bus: EventBus | None = None,
    checks: Mapping[str, HealthCheck] | None = None,
    critical: Mapping[str, bool] | None = None,
    timeouts: Mapping[str, float] | None = None,
    default_timeout: float = 2.0,
    cache_ttl: float = 2.0,
    system_thresholds: SystemThresholds | None = None,
    disk_path: str = "/",
    secrets: Iterable[str | None] = (),
) -> HealthChecker:
    """Create the process-wide HealthChecker with the guide's dependencies.

    Checks are named ``redis`` (critical), ``binance_rest`` (not critical), ``postgres``
    (critical), ``event_bus`` (critical), the keys of ``checks`` (not critical), and
    ``system`` (not critical).

    Args:
        service_name: The service's name in every report.
        redis_client: A ``redis.asyncio.Redis`` client; PING is checked when given. A
            ``RedisCluster``: every master's PING and the cluster's state (see RedisCheck).
        binance_api_key: Shown masked in the report, never sent.
        binance_api_secret: Never shown, never sent.
        binance_testnet: Probe ``testnet.binance.vision`` rather than ``api.binance.com``.
        version: The application's version, ``version`` in every report.
        binance_base_url: Overrides the exchange host (a proxy, a local test server).
        check_binance: False leaves the exchange out.
        postgres: A PostgreSQL DSN or an asyncpg pool; ``SELECT 1`` is checked when given.
        event_bus: An :class:`EventBus` whose transport and consumer backlog are checked.
        checks: Custom checks by name (async callables, see :meth:`HealthChecker.register`).
        critical: Criticality by check name, overriding the defaults above.
        timeouts: Seconds by check name, overriding ``default_timeout``.
        default_timeout: Seconds any check may take.
        cache_ttl: Seconds a report is reused.
        system_thresholds: When the host becomes DEGRADED.
        disk_path: The filesystem whose use is reported.
        secrets: Extra strings never to show (custom checks' credentials).

    Raises:
        RuntimeError: if one is already initialized (``await shutdown_health_checker()``).
        ValueError: for arguments that cannot work (a bad timeout, an unknown check name).
    """
    global _checker
    if _checker is not None:
        raise RuntimeError(
            "the HealthChecker is already initialized; call `await shutdown_health_checker()` first"
        )
    checker = HealthChecker(
        service_name,
        version=version,
        default_timeout=default_timeout,
        cache_ttl=cache_ttl,
        system=SystemCheck(system_thresholds, disk_path=disk_path),
        secrets=secrets,
    )
    if redis_client is not None:
        checker.register("redis", RedisCheck(redis_client), critical=True)
    if check_binance:
        exchange = BinanceRestCheck(
            testnet=binance_testnet,
            base_url=binance_base_url,
            api_key=binance_api_key,
            api_secret=binance_api_secret,
        )
        checker.register("binance_rest", exchange, critical=False)
    else:
        checker.add_secrets([binance_api_key, binance_api_secret])
    if postgres is not None:
        checker.register("postgres", PostgresCheck(postgres), critical=True)
    if event_bus is not None:
        checker.register("event_bus", EventBusCheck(event_bus), critical=True)
    for name, check in (checks or {}).items():
        checker.register(name, check)
    try:
        for name, is_critical in (critical or {}).items():
            checker.configure(name, critical=is_critical)
        for name, seconds in (timeouts or {}).items():
            checker.configure(name, timeout=seconds)
    except KeyError as exc:
        await checker.close()
        raise ValueError(exc.args[0]) from None
    _checker = checker
    return checker


def get_health_checker() -> HealthChecker:
    """Return the process-wide HealthChecker.

    Raises:
        RuntimeError: before ``initialize_health_checker()``.
    """
    if _checker is None:
        raise RuntimeError(
            "the HealthChecker is not initialized: call "
            "`await initialize_health_checker(service_name=...)` first"
        )
    return _checker


async def shutdown_health_checker() -> None:
    """Close and forget the process-wide HealthChecker; harmless when there is none."""
    global _checker
    checker, _checker = _checker, None
    if checker is not None:
        await checker.close()
