"""Health checks for a quantum_core service: dependencies, host, and the verdict.

:class:`HealthChecker` runs every check concurrently, each within its timeout, caches the
report briefly and shares one run between concurrent callers; :class:`HealthReport` renders
the guide's ``/health`` JSON, the HTTP status a probe expects and the IETF health format.
"""

from ._exchange import BINANCE_PRODUCTION_URL, BINANCE_TESTNET_URL, BinanceRestCheck
from ._report import HEALTH_JSON_MEDIA_TYPE, CheckResult, HealthReport, HealthStatus
from ._runtime import get_health_checker, initialize_health_checker, shutdown_health_checker
from ._secrets import mask_key
from .checker import CheckOutcome, HealthCheck, HealthChecker
from .checks import EventBusCheck, PostgresCheck, RedisCheck, SystemCheck, SystemThresholds

__all__ = [
    "BINANCE_PRODUCTION_URL",
    "BINANCE_TESTNET_URL",
    "HEALTH_JSON_MEDIA_TYPE",
    "BinanceRestCheck",
    "CheckOutcome",
    "CheckResult",
    "EventBusCheck",
    "HealthCheck",
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "PostgresCheck",
    "RedisCheck",
    "SystemCheck",
    "SystemThresholds",
    "get_health_checker",
    "initialize_health_checker",
    "mask_key",
    "shutdown_health_checker",
]
