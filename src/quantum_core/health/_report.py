"""What a health check answers, and the report the checker assembles from the answers.

Why a module of its own: the report is the API contract (the guide's ``/health`` JSON, the
HTTP status a probe expects, the IETF health-check format), and it must stay readable apart
from the machinery that runs the checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from .._version import __version__

__all__ = ["HEALTH_JSON_MEDIA_TYPE", "CheckResult", "HealthReport", "HealthStatus"]

HEALTH_JSON_MEDIA_TYPE: Final = "application/health+json"
"""The media type of :meth:`HealthReport.to_ietf` (draft-inadarei-api-health-check)."""

_RESERVED: Final = frozenset({"status", "latency_ms", "error", "critical"})


class HealthStatus(StrEnum):
    """How well something works; the order is HEALTHY < DEGRADED < UNHEALTHY."""

    HEALTHY = "HEALTHY"
    """Works as expected."""
    DEGRADED = "DEGRADED"
    """Works, but not as well as it should (slow, rate limited, near a limit)."""
    UNHEALTHY = "UNHEALTHY"
    """Does not work."""

    @property
    def ietf(self) -> str:
        """The IETF health-check status: ``pass``, ``warn`` or ``fail``."""
        return _IETF[self]

    @property
    def severity(self) -> int:
        """0, 1 or 2: compare severities, never the names."""
        return _SEVERITY[self]


_IETF: Final = {
    HealthStatus.HEALTHY: "pass",
    HealthStatus.DEGRADED: "warn",
    HealthStatus.UNHEALTHY: "fail",
}
_SEVERITY: Final = {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1, HealthStatus.UNHEALTHY: 2}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer of one check.

    A check returns one (or a :class:`HealthStatus`, a bool, or None for healthy); the
    checker fills in what the check left out (``latency_ms``, ``critical``).

    Attributes:
        status: The check's own status, before criticality is applied.
        latency_ms: Round-trip time of the probe in milliseconds, None when not measured.
        error: Why the status is not HEALTHY, in words an operator can act on.
        details: Extra JSON values shown beside the status (``clock_skew_ms``...).
        critical: Whether this dependency being UNHEALTHY makes the service UNHEALTHY.
        component_type: The IETF ``componentType`` (``datastore``, ``system``...).
    """

    status: HealthStatus
    latency_ms: float | None = None
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = False
    component_type: str = "component"

    @classmethod
    def healthy(cls, latency_ms: float | None = None, **details: Any) -> CheckResult:
        """Return a HEALTHY result."""
        return cls(HealthStatus.HEALTHY, latency_ms, None, details)

    @classmethod
    def degraded(cls, error: str, latency_ms: float | None = None, **details: Any) -> CheckResult:
        """Return a DEGRADED result saying why."""
        return cls(HealthStatus.DEGRADED, latency_ms, error, details)

    @classmethod
    def unhealthy(cls, error: str, latency_ms: float | None = None, **details: Any) -> CheckResult:
        """Return an UNHEALTHY result saying why."""
        return cls(HealthStatus.UNHEALTHY, latency_ms, error, details)

    def to_dict(self, *, dependency: bool = True) -> dict[str, Any]:
        """Return the guide's shape: ``status``, ``latency_ms``, ``error`` when set, details.

        The host's entry (``dependency=False``) has neither latency nor criticality.
        """
        entry: dict[str, Any] = {"status": self.status.value}
        if dependency:
            entry["latency_ms"] = self.latency_ms
        if self.error is not None:
            entry["error"] = self.error
        if dependency:
            entry["critical"] = self.critical
        for key, value in self.details.items():
            if key not in _RESERVED:
                entry[key] = value
        return entry


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The health of a service at one moment: its dependencies, its host, and the verdict.

    Attributes:
        service: The service's name.
        status: UNHEALTHY if a critical dependency is UNHEALTHY; DEGRADED if anything else
            is not HEALTHY; else HEALTHY.
        version: The application's version, as given to the checker (None if not given).
        timestamp: When the checks started, timezone-aware UTC.
        uptime_seconds: Seconds since the checker was created (at service start).
        duration_ms: How long the checks took together.
        dependencies: One result per dependency check, by name.
        system: The host's result, None when not checked (as in a liveness answer).
        library_version: The quantum_core version the service runs.
    """

    service: str
    status: HealthStatus
    version: str | None
    timestamp: datetime
    uptime_seconds: float
    duration_ms: float
    dependencies: Mapping[str, CheckResult]
    system: CheckResult | None = None
    library_version: str = __version__

    @property
    def http_status(self) -> int:
        """The HTTP status a probe expects: 200 when HEALTHY or DEGRADED, 503 when UNHEALTHY."""
        return 503 if self.status is HealthStatus.UNHEALTHY else 200

    @property
    def failing(self) -> dict[str, str]:
        """Name and reason of every check that is not HEALTHY (``system`` for the host)."""
        results = dict(self.dependencies)
        if self.system is not None:
            results["system"] = self.system
        return {
            name: result.error or result.status.value
            for name, result in results.items()
            if result.status is not HealthStatus.HEALTHY
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the guide's ``/health`` JSON (plain JSON types only)."""
        report: dict[str, Any] = {
            "service": self.service,
            "status": self.status.value,
            "version": self.version,
            "quantum_core_version": self.library_version,
            "timestamp": _iso(self.timestamp),
            "uptime_seconds": round(self.uptime_seconds, 1),
            "duration_ms": round(self.duration_ms, 2),
            "dependencies": {name: r.to_dict() for name, r in self.dependencies.items()},
        }
        if self.system is not None:
            report["system"] = self.system.to_dict(dependency=False)
        return report

    def to_ietf(self) -> dict[str, Any]:
        """Return the IETF health-check JSON (media type :data:`HEALTH_JSON_MEDIA_TYPE`).

        Each dependency becomes ``"<name>:responseTime"``, the host ``"cpu:utilization"``,
        ``"memory:utilization"`` and ``"disk:utilization"``; statuses become
        ``pass``/``warn``/``fail``.
        """
        time = _iso(self.timestamp)
        checks: dict[str, list[dict[str, Any]]] = {}
        for name, result in self.dependencies.items():
            entry: dict[str, Any] = {
                "componentType": result.component_type,
                "observedValue": result.latency_ms,
                "observedUnit": "ms",
                "status": result.status.ietf,
                "time": time,
            }
            if result.error is not None:
                entry["output"] = result.error
            checks[f"{name}:responseTime"] = [entry]
        if self.system is not None:
            for metric in ("cpu", "memory", "disk"):
                entry = {"componentType": "system", "status": self.system.status.ietf, "time": time}
                value = self.system.details.get(f"{metric}_percent")
                if value is not None:
                    entry |= {"observedValue": value, "observedUnit": "percent"}
                if self.system.error is not None:
                    entry["output"] = self.system.error
                checks[f"{metric}:utilization"] = [entry]
        body: dict[str, Any] = {
            "status": self.status.ietf,
            "serviceId": self.service,
            "description": f"health of {self.service}",
            "notes": [f"quantum_core {self.library_version}"],
            "checks": checks,
        }
        if self.version is not None:
            body["version"] = self.version
        failing = self.failing
        if failing:
            body["output"] = "; ".join(f"{name}: {why}" for name, why in failing.items())
        return body


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
