"""Running one check within its time bound, judging the results, and logging changes.

Kept apart from :mod:`.checker` (which owns caching, single flight and closing) so each
module has one job. Nothing here raises because a check misbehaved: a check that raises,
hangs, ignores cancellation or returns something odd becomes an UNHEALTHY result saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from ..logs import get_logger
from ._report import CheckResult, HealthStatus
from ._secrets import Scrubber

__all__ = ["CheckOutcome", "HealthCheck"]

CheckOutcome: TypeAlias = CheckResult | HealthStatus | bool | None
"""What a check may return: a result, a status, True/None (healthy) or False (unhealthy)."""

HealthCheck: TypeAlias = Callable[[], Awaitable[CheckOutcome]]
"""An async function (or object with ``async __call__``) taking no argument."""

log = get_logger("quantum_core.health")

_MAX_ERROR_LENGTH = 500


@dataclass(slots=True)
class Entry:
    """One registered check and how it is run."""

    name: str
    check: HealthCheck
    critical: bool
    timeout: float
    component_type: str
    abandoned: asyncio.Task[CheckResult] | None = None


async def run_entry(entry: Entry, scrubber: Scrubber) -> CheckResult:
    """Run one check in its own task, bounded by its timeout; never raises but cancellation.

    The task is abandoned (cancelled, not awaited) when the timeout passes, so a check that
    swallows cancellation cannot hold the report; it is not started again while it runs.
    """
    if entry.abandoned is not None and not entry.abandoned.done():
        stuck = CheckResult.unhealthy(
            "the previous run of this check ignored its timeout and is still running;"
            " not started again"
        )
        return finish(entry, stuck, None, scrubber)
    started = time.monotonic()
    task = asyncio.create_task(_call(entry.check, scrubber), name=f"health check {entry.name}")
    try:
        done, _ = await asyncio.wait((task,), timeout=entry.timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    elapsed_ms = (time.monotonic() - started) * 1000
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        entry.abandoned = task
        result = CheckResult.unhealthy(f"no answer within {entry.timeout:g} s")
    elif task.cancelled():
        result = CheckResult.unhealthy("the check was cancelled")
    else:
        result = task.result()
    return finish(entry, result, elapsed_ms, scrubber)


async def _call(check: HealthCheck, scrubber: Scrubber) -> CheckResult:
    try:
        outcome = await check()
    except Exception as exc:
        return CheckResult.unhealthy(describe(exc, scrubber))
    return _normalise(outcome)


def finish(
    entry: Entry, result: CheckResult, elapsed_ms: float | None, scrubber: Scrubber
) -> CheckResult:
    """Fill in latency, criticality and component type; scrub every text."""
    latency = result.latency_ms if result.latency_ms is not None else elapsed_ms
    error = None if result.error is None else scrubber.text(result.error)[:_MAX_ERROR_LENGTH]
    return replace(
        result,
        latency_ms=None if latency is None else round(latency, 2),
        error=error,
        details=scrubber.value(dict(result.details)),
        critical=entry.critical,
        component_type=entry.component_type,
    )


def describe(exc: BaseException | None, scrubber: Scrubber) -> str:
    """``"ConnectionError: Error 111 connecting..."``, scrubbed and bounded."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return scrubber.text(text)[:_MAX_ERROR_LENGTH]


def aggregate(results: Iterable[CheckResult]) -> HealthStatus:
    """UNHEALTHY if a critical check is; a non-critical UNHEALTHY counts as DEGRADED."""
    worst = HealthStatus.HEALTHY
    for result in results:
        status = result.status
        if status is HealthStatus.UNHEALTHY and not result.critical:
            status = HealthStatus.DEGRADED
        if status.severity > worst.severity:
            worst = status
    return worst


def _normalise(outcome: object) -> CheckResult:
    if isinstance(outcome, CheckResult):
        return outcome
    if isinstance(outcome, HealthStatus):
        error = None if outcome is HealthStatus.HEALTHY else f"the check reported {outcome.value}"
        return CheckResult(outcome, error=error)
    if outcome is None or outcome is True:
        return CheckResult.healthy()
    if outcome is False:
        return CheckResult.unhealthy("the check returned False")
    return CheckResult.unhealthy(
        f"the check returned {type(outcome).__name__}; expected a CheckResult, a HealthStatus,"
        " a bool or None"
    )


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark an abandoned task's outcome as seen, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


class ChangeLog:
    """Log what changed since the last run, not every run: probes come every second."""

    def __init__(self) -> None:
        self._service: HealthStatus | None = None
        self._checks: dict[str, HealthStatus] = {}

    def record(self, status: HealthStatus, results: Mapping[str, CheckResult]) -> None:
        """Compare with the previous run and log each change (texts are already scrubbed)."""
        for name, result in results.items():
            before = self._checks.get(name)
            if result.status is before:
                continue
            if result.status is not HealthStatus.HEALTHY:
                log.warning(
                    "health_check_not_healthy",
                    check=name,
                    health_status=result.status.value,
                    critical=result.critical,
                    error=result.error,
                )
            elif before is not None:
                log.info("health_check_recovered", check=name, previous=before.value)
        self._checks = {name: result.status for name, result in results.items()}
        if status is not self._service:
            write = log.info if status is HealthStatus.HEALTHY else log.warning
            previous = None if self._service is None else self._service.value
            write("health_status_changed", health_status=status.value, previous=previous)
            self._service = status
        log.debug(
            "health_checks_ran",
            health_status=status.value,
            statuses={name: result.status.value for name, result in results.items()},
        )
