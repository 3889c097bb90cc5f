"""HealthChecker: every dependency checked at once, each within its own time bound.

Why it is built this way:

* Load balancers and Kubernetes probe every few seconds with a 1 s timeout. Checks run
  concurrently, each in a task of its own that is abandoned (cancelled, never awaited) when
  its timeout passes, so a report takes about the largest timeout even when a check ignores
  cancellation. A check still stuck from an earlier run is not started again.
* A burst of probes must not become a burst of pings: a report is cached for ``cache_ttl``
  seconds, and callers arriving while checks run share that one run (single flight). A
  caller that gives up (its request was cancelled) does not cancel the run for the others.
* Nothing a check says reaches the report or a log line before :class:`Scrubber` has masked
  the secrets the checker knows and the usual secret patterns.
* Connections the checks open (an aiohttp session, an asyncpg connection) are closed by
  :meth:`HealthChecker.close`; if the application forgets to call it, a guardian task
  closes them when the event loop shuts down (``asyncio.run`` cancels remaining tasks), so
  no "Unclosed client session" warning is printed at exit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from .._checks import check_name, check_seconds
from ..observability._gate import refresh as refresh_tracing
from ..observability._gate import traced
from ..observability._metrics import turned_on
from ._report import CheckResult, HealthReport, HealthStatus
from ._running import (
    ChangeLog,
    CheckOutcome,
    Entry,
    HealthCheck,
    aggregate,
    describe,
    log,
    run_entry,
)
from ._secrets import Scrubber
from .checks import SystemCheck

__all__ = ["CheckOutcome", "HealthCheck", "HealthChecker"]

SYSTEM = "system"
_CLOSE_TIMEOUT = 5.0


class HealthChecker:
    """Runs health checks concurrently with time bounds, and reports the service's health.

    Args:
        service_name: The service's name, shown as ``service`` in every report.
        version: The application's version (``"2.0.0"``), shown as ``version`` in every
            report next to ``quantum_core_version``; None when the application has none.
        default_timeout: Seconds a check may take unless registered with its own timeout.
        cache_ttl: Seconds a report is reused before the checks run again (0: every call
            runs them, still one run for concurrent callers).
        system: Check the host (CPU, memory, disk): True for :class:`SystemCheck` with its
            default thresholds, a configured :class:`SystemCheck`, or False.
        secrets: Extra strings that must never be shown (custom checks' credentials).

    A checker belongs to the event loop it first reports in: its connections are that
    loop's, and it is closed when that loop shuts down.

    Examples:
        >>> async def main() -> None:
        ...     async with HealthChecker("quantum_trader") as checker:
        ...         checker.register("redis", RedisCheck(redis_client), critical=True)
        ...         report = await checker.get_health_report()
        ...         print(report.status, report.http_status)
    """

    def __init__(
        self,
        service_name: str,
        *,
        version: str | None = None,
        default_timeout: float = 2.0,
        cache_ttl: float = 2.0,
        system: SystemCheck | bool = True,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.service_name = check_name("service_name", service_name)  # as the bus's
        self.version = None if version is None else check_name("version", version, max_length=64)
        self._default_timeout = check_seconds("default_timeout", default_timeout, positive=True)
        self._cache_ttl = check_seconds("cache_ttl", cache_ttl)
        self._scrubber = Scrubber()
        self._scrubber.add(secrets)
        self._entries: dict[str, Entry] = {}
        self._started = time.monotonic()
        self._cached: HealthReport | None = None
        self._cached_at = -math.inf
        self._inflight: asyncio.Task[HealthReport] | None = None
        self._guardian: asyncio.Task[None] | None = None
        self._changes = ChangeLog()
        self._closed = False
        self._metrics = turned_on()  # quantum_core_health_status per check
        refresh_tracing()
        if system is True:
            system = SystemCheck()
        if system is not False:
            self._entries[SYSTEM] = Entry(
                SYSTEM, system, False, self._default_timeout, system.component_type
            )

    # -- configuration --------------------------------------------------------------------

    @property
    def check_names(self) -> list[str]:
        """The names of the registered checks, ``system`` included when the host is checked."""
        return list(self._entries)

    def register(
        self,
        name: str,
        check: HealthCheck,
        *,
        critical: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Add a check, run with the others on every report.

        Args:
            name: Its key under ``dependencies`` (``"redis"``, ``"binance_rest"``...).
            check: An async callable without arguments returning a :data:`CheckOutcome`;
                an exception it raises makes it UNHEALTHY with the exception as ``error``.
            critical: If True, this check UNHEALTHY makes the service UNHEALTHY; otherwise
                it makes the service DEGRADED at most.
            timeout: Seconds the check may take; the checker's ``default_timeout`` if None.

        Raises:
            ValueError: for an empty, reserved or already registered name, or a bad timeout.
            TypeError: if ``check`` is not callable.
        """
        if not isinstance(name, str) or not name.strip() or name == SYSTEM:
            raise ValueError(f"check name must be a non-empty string other than 'system': {name!r}")
        if name in self._entries:
            raise ValueError(f"a check named {name!r} is already registered")
        if not callable(check):
            raise TypeError(f"check {name!r} must be an async callable, got {check!r}")
        bound = (
            self._default_timeout
            if timeout is None
            else check_seconds("timeout", timeout, positive=True)
        )
        secret_values = getattr(check, "secret_values", None)
        if callable(secret_values):
            self._scrubber.add(secret_values())
        component_type = getattr(check, "component_type", "component")
        self._entries[name] = Entry(name, check, bool(critical), bound, str(component_type))
        self._cached = None

    def configure(
        self, name: str, *, critical: bool | None = None, timeout: float | None = None
    ) -> None:
        """Change a registered check's criticality or timeout (``"system"`` included).

        Raises:
            KeyError: if no check has that name.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(f"no health check named {name!r}; registered: {self.check_names}")
        if critical is not None:
            entry.critical = bool(critical)
        if timeout is not None:
            entry.timeout = check_seconds("timeout", timeout, positive=True)
        self._cached = None

    def add_secrets(self, values: Iterable[str | None]) -> None:
        """Never show any of ``values`` in a report or a log line."""
        self._scrubber.add(values)

    # -- reports --------------------------------------------------------------------------

    async def get_health_report(self, *, fresh: bool = False) -> HealthReport:
        """Return the service's health, from cache when younger than ``cache_ttl``.

        Never raises because a dependency is down: that is what the report says. With
        ``fresh=True`` the cache is skipped (a run in progress is still shared).

        Raises:
            RuntimeError: after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("this HealthChecker is closed; create a new one")
        cached = self._cached
        if (
            not fresh
            and cached is not None
            and time.monotonic() - self._cached_at < self._cache_ttl
        ):
            return cached
        self._watch_loop_shutdown()
        task = self._inflight
        if task is None:
            task = asyncio.create_task(self._run(), name=f"health checks of {self.service_name}")
            self._inflight = task
            task.add_done_callback(self._run_done)
        return await asyncio.shield(task)

    async def readiness(self) -> HealthReport:
        """The readiness answer: dependencies checked; ready unless UNHEALTHY (HTTP 503)."""
        return await self.get_health_report()

    def liveness(self) -> HealthReport:
        """The liveness answer: touches no dependency, HEALTHY while the process can answer.

        A liveness probe that checked Redis would restart every replica when Redis is down,
        which cures nothing; readiness takes them out of rotation instead.
        """
        return HealthReport(
            service=self.service_name,
            status=HealthStatus.HEALTHY,
            version=self.version,
            timestamp=datetime.now(UTC),
            uptime_seconds=time.monotonic() - self._started,
            duration_ms=0.0,
            dependencies={},
        )

    # -- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop running checks and close what the checks opened; harmless when repeated.

        Clients passed in by the caller (a Redis client, an asyncpg pool, an event bus) are
        left open: they are the caller's.
        """
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        guardian, self._guardian = self._guardian, None
        if guardian is not None and guardian is not current:
            guardian.cancel()
        leftovers: list[asyncio.Task[Any]] = [
            t for t in (self._inflight,) if t is not None and t is not current
        ]
        leftovers += [e.abandoned for e in self._entries.values() if e.abandoned is not None]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=_CLOSE_TIMEOUT)
        for entry in self._entries.values():
            close = getattr(entry.check, "close", None)
            if not callable(close):
                continue
            try:
                await asyncio.wait_for(close(), _CLOSE_TIMEOUT)
            except Exception as exc:
                log.warning(
                    "health_check_close_failed",
                    check=entry.name,
                    error=describe(exc, self._scrubber),
                )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<HealthChecker service={self.service_name!r} {state} checks={self.check_names}>"

    # -- running --------------------------------------------------------------------------

    def _watch_loop_shutdown(self) -> None:
        """Start the guardian that closes the checks if the loop ends before close()."""
        if self._guardian is None or self._guardian.done():
            self._guardian = asyncio.create_task(
                self._close_at_loop_shutdown(), name=f"health checker {self.service_name} guard"
            )

    async def _close_at_loop_shutdown(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            await self.close()

    def _run_done(self, task: asyncio.Task[HealthReport]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is not None:  # retrieved: not lost
            log.error("health_report_failed", error=describe(task.exception(), self._scrubber))

    async def _run_entry(self, entry: Entry) -> CheckResult:
        """One check, in a span ``health check {name}`` when an OpenTelemetry SDK is configured."""
        attributes = {"quantum_core.health.check": entry.name}
        with traced(f"health check {entry.name}", **attributes) as span:
            result = await run_entry(entry, self._scrubber)
            if span is not None:
                span.set_attribute("quantum_core.health.status", result.status.value)
            return result

    async def _run(self) -> HealthReport:
        started = time.monotonic()
        timestamp = datetime.now(UTC)
        entries = list(self._entries.values())
        results = await asyncio.gather(*(self._run_entry(e) for e in entries))
        by_name = {entry.name: result for entry, result in zip(entries, results, strict=True)}
        status = aggregate(results)
        if self._metrics is not None:
            self._metrics.health_checked(
                self.service_name, {name: result.status.value for name, result in by_name.items()}
            )
        self._changes.record(status, by_name)
        system = by_name.pop(SYSTEM, None)
        report = HealthReport(
            service=self.service_name,
            status=status,
            version=self.version,
            timestamp=timestamp,
            uptime_seconds=started - self._started,
            duration_ms=(time.monotonic() - started) * 1000,
            dependencies=by_name,
            system=system,
        )
        self._cached, self._cached_at = report, time.monotonic()
        return report
