"""The built-in checks: Redis, PostgreSQL, the event bus and the host.

Each check is an object with ``async __call__() -> CheckResult`` (what the checker runs),
``component_type`` (for the IETF format), and where it matters ``secret_values()`` (what the
checker must scrub) and ``async close()`` (what it opened itself). The checker bounds each
call with its timeout, so a check measures and describes; it does not time itself out.
The exchange check lives in ``_exchange.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import psutil

from .._checks import check_seconds
from .._redaction import redact_text
from ..errors import TransportError
from ._report import CheckResult
from ._secrets import dsn_secrets

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["EventBusCheck", "PostgresCheck", "RedisCheck", "SystemCheck", "SystemThresholds"]


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class SupportsPing(Protocol):
    """A Redis client: ``redis.asyncio.Redis`` (any ``decode_responses``), or a cluster."""

    def ping(self, **kwargs: Any) -> Any:
        """Send PING."""


class RedisCheck:
    """PING round-trip time of a Redis client; on a Redis Cluster, the cluster's state too.

    The client's own retry policy applies: with redis-py's default one, a server that is
    down is retried for a few seconds, and the check reports "no answer within <timeout>";
    a client made with ``retry=Retry(NoBackoff(), 0)`` reports the connection error at once.
    The client is the caller's and is never closed here.

    Given a ``redis.asyncio.cluster.RedisCluster``, it PINGs every master it knows of, and
    reads ``CLUSTER INFO``: UNHEALTHY when a master does not answer, when the cluster says
    ``cluster_state:fail`` or when some of the 16384 slots have no master serving them
    (their keys can be neither read nor written); details carry ``cluster_state``,
    ``masters`` and ``slots_ok``.
    """

    component_type: Final = "datastore"

    def __init__(self, client: SupportsPing) -> None:
        self._client = client

    def secret_values(self) -> list[str]:
        """The client's password, to be scrubbed from errors."""
        kwargs = getattr(getattr(self._client, "connection_pool", None), "connection_kwargs", {})
        if _is_cluster(self._client):
            kwargs = self._client.get_connection_kwargs()  # type: ignore[attr-defined]
        password = kwargs.get("password") if isinstance(kwargs, dict) else None
        return [password] if isinstance(password, str) else []

    async def __call__(self) -> CheckResult:
        """Send PING and time the answer."""
        started = time.perf_counter()
        if _is_cluster(self._client):
            return await _cluster_check(self._client, started)
        answer = self._client.ping()
        if inspect.isawaitable(answer):
            answer = await answer
        latency = _ms_since(started)
        if answer is True or answer in (b"PONG", "PONG"):
            return CheckResult.healthy(latency)
        return CheckResult.unhealthy(f"PING answered {answer!r}, expected PONG", latency)

    def __repr__(self) -> str:
        return f"<RedisCheck {type(self._client).__name__}>"


def _is_cluster(client: object) -> bool:
    """Whether ``client`` is redis-py's asyncio RedisCluster (or ours, a subclass of it).

    Without redis-py's cluster module imported, no client can be one: nothing is imported.
    """
    cluster = sys.modules.get("redis.asyncio.cluster")
    return cluster is not None and isinstance(client, cluster.RedisCluster)


_SLOTS = 16384


async def _cluster_check(client: Any, started: float) -> CheckResult:
    """Every known master answers PING, and CLUSTER INFO says every slot is served."""
    await client.initialize()
    masters = client.get_primaries()
    pings = await asyncio.gather(
        *(client.execute_command("PING", target_nodes=node) for node in masters),
        return_exceptions=True,
    )
    silent = [
        node.name
        for node, answer in zip(masters, pings, strict=True)
        if isinstance(answer, BaseException)
    ]
    latency = _ms_since(started)
    answering = [
        node
        for node, answer in zip(masters, pings, strict=True)
        if not isinstance(answer, BaseException)
    ]
    if not answering:
        return CheckResult.unhealthy(
            f"no master of the cluster answers ({', '.join(silent)})", latency
        )
    info = await client.execute_command("CLUSTER INFO", target_nodes=answering[0])
    if isinstance(info, bytes | str):
        text = info.decode() if isinstance(info, bytes) else info
        info = dict(line.split(":", 1) for line in text.split() if ":" in line)
    state = str(info.get("cluster_state", "unknown"))
    slots_ok = int(info.get("cluster_slots_ok", 0))
    details = {"cluster_state": state, "masters": len(masters), "slots_ok": slots_ok}
    if silent:
        return CheckResult.unhealthy(
            f"masters not answering: {', '.join(silent)}", latency, **details
        )
    if state != "ok" or slots_ok < _SLOTS:
        return CheckResult.unhealthy(
            f"cluster_state:{state}, {_SLOTS - slots_ok} of {_SLOTS} slots not served",
            latency,
            **details,
        )
    return CheckResult.healthy(latency, **details)


class PostgresCheck:
    """``SELECT 1`` round-trip time on PostgreSQL, through asyncpg.

    Args:
        target: A DSN (``postgresql://user:password@host:5432/db``), for which the check keeps
            one connection of its own, reconnecting after any failure; or an asyncpg pool,
            from which it borrows a connection per check (the pool is the caller's).
    """

    component_type: Final = "datastore"

    def __init__(self, target: Any) -> None:
        if isinstance(target, str):
            self._dsn: str | None = target
            self._pool: Any = None
        elif callable(getattr(target, "acquire", None)):
            self._dsn, self._pool = None, target
        else:
            raise TypeError(
                f"PostgresCheck needs a DSN string or an asyncpg pool, got {type(target).__name__}"
            )
        self._connection: Any = None
        if self._dsn is not None:
            import asyncpg  # type: ignore[import-untyped]  # here, not in a check: slow import

            self._connect = asyncpg.connect

    def secret_values(self) -> list[str]:
        """The DSN's password, to be scrubbed from errors."""
        return dsn_secrets(self._dsn)

    async def __call__(self) -> CheckResult:
        """Run ``SELECT 1`` and time it (the connection, when one is made, is not timed).

        A kept connection the server has since closed (a restart, an idle timeout) is
        replaced at once, so it does not show as a false alarm.
        """
        if self._pool is not None:
            async with self._pool.acquire() as connection:
                return await self._select_one(connection)
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(Exception):  # one fresh attempt below reports its error
                return await self._on_own_connection()
        return await self._on_own_connection()

    async def _on_own_connection(self) -> CheckResult:
        if self._connection is None or self._connection.is_closed():
            self._connection = await self._connect(self._dsn)
        connection = self._connection
        try:
            return await self._select_one(connection)
        except BaseException:  # a query cut off by a timeout leaves the connection unusable
            self._connection = None
            connection.terminate()
            raise

    @staticmethod
    async def _select_one(connection: Any) -> CheckResult:
        started = time.perf_counter()
        value = await connection.fetchval("SELECT 1")
        latency = _ms_since(started)
        if value == 1:
            return CheckResult.healthy(latency)
        return CheckResult.unhealthy(f"SELECT 1 returned {value!r}", latency)

    async def close(self) -> None:
        """Close the check's own connection (never the caller's pool)."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=2)
            except Exception:
                connection.terminate()

    def __repr__(self) -> str:
        target = redact_text(self._dsn) if self._dsn is not None else "pool"
        return f"<PostgresCheck {target}>"


class EventBusCheck:
    """The event bus's transport answers; consumer pending and lag per group where known.

    Args:
        bus: The :class:`EventBus` to check.
        max_pending: DEGRADED when a group holds more unacknowledged events; None: no limit.
        max_lag: DEGRADED when a group has more events not yet delivered; None: no limit.
    """

    component_type: Final = "component"

    def __init__(
        self, bus: EventBus, *, max_pending: int | None = None, max_lag: int | None = None
    ) -> None:
        self._bus = bus
        self._max_pending = max_pending
        self._max_lag = max_lag

    async def __call__(self) -> CheckResult:
        """Ping the transport, then read each subscription's backlog."""
        started = time.perf_counter()
        try:
            await self._bus.ping()
        except TransportError as exc:
            return CheckResult.unhealthy(f"transport unreachable: {exc}", _ms_since(started))
        latency = _ms_since(started)
        try:
            backlog = await self._bus.backlog()
        except Exception as exc:
            return CheckResult.degraded(
                f"transport answers, but its backlog could not be read: {type(exc).__name__}:"
                f" {exc}",
                latency,
                running=self._bus.is_running,
            )
        groups = {name: {"pending": b.pending, "lag": b.lag} for name, b in backlog.items()}
        behind = [
            f"{name} ({what} {count} > {limit})"
            for name, b in backlog.items()
            for what, count, limit in (
                ("pending", b.pending, self._max_pending),
                ("lag", b.lag, self._max_lag),
            )
            if count is not None and limit is not None and count > limit
        ]
        details = {"running": self._bus.is_running, "groups": groups}
        if behind:
            return CheckResult.degraded(
                "consumers behind: " + ", ".join(behind), latency, **details
            )
        return CheckResult.healthy(latency, **details)


@dataclass(frozen=True, slots=True)
class SystemThresholds:
    """Percentages at or above which the host is DEGRADED (None: never for that metric)."""

    cpu_percent: float | None = 90.0
    memory_percent: float | None = 90.0
    disk_percent: float | None = 90.0


class _CpuSampler:
    """System CPU use since the previous sample, without sleeping a thread.

    ``psutil.cpu_percent(interval=None)`` answers 0.0 on its first call and shares its last
    sample with every other caller in the thread; this keeps a sample of its own, taken when
    it is created, and waits (asynchronously) until at least ``min_window`` seconds separate
    two samples, so the first answer is a real measurement.
    """

    def __init__(self, min_window: float) -> None:
        self._min_window = min_window
        self._last = self._read()
        self._value: float | None = None

    @staticmethod
    def _read() -> tuple[float, float, float]:
        times = psutil.cpu_times()._asdict()
        # As psutil does: guest time is already counted in user time on Linux.
        total = sum(times.values()) - times.get("guest", 0.0) - times.get("guest_nice", 0.0)
        idle = times.get("idle", 0.0) + times.get("iowait", 0.0)
        return time.monotonic(), total - idle, total

    async def percent(self) -> float:
        waited = time.monotonic() - self._last[0]
        if waited < self._min_window:
            if self._value is not None:
                return self._value
            await asyncio.sleep(self._min_window - waited)
        sample = self._read()
        (_, busy_before, total_before), (_, busy, total) = self._last, sample
        delta = total - total_before
        value = 0.0 if delta <= 0 else max(0.0, min(100.0, (busy - busy_before) / delta * 100))
        self._last, self._value = sample, round(value, 1)
        return self._value


class SystemCheck:
    """CPU, memory and disk use of the host, DEGRADED at or above the thresholds.

    A busy host is DEGRADED, never UNHEALTHY: the checker registers it as non-critical, so
    the host alone never takes the service out of rotation unless configured to.

    Args:
        thresholds: The DEGRADED thresholds.
        disk_path: The filesystem whose use is reported.
        cpu_window: The shortest span, in seconds, CPU use is measured over (>= 0).
    """

    component_type: Final = "system"

    def __init__(
        self,
        thresholds: SystemThresholds | None = None,
        *,
        disk_path: str = "/",
        cpu_window: float = 0.2,
    ) -> None:
        self.thresholds = thresholds or SystemThresholds()
        self.disk_path = disk_path
        self._cpu = _CpuSampler(check_seconds("cpu_window", cpu_window))

    async def __call__(self) -> CheckResult:
        """Measure CPU (over the time since the last call), memory and disk use."""
        cpu = await self._cpu.percent()
        memory, disk = await asyncio.to_thread(self._memory_and_disk)  # statvfs may block
        measured = {"cpu_percent": cpu, "memory_percent": memory, "disk_percent": disk}
        limits = {
            "cpu_percent": self.thresholds.cpu_percent,
            "memory_percent": self.thresholds.memory_percent,
            "disk_percent": self.thresholds.disk_percent,
        }
        over = [
            f"{name.removesuffix('_percent')} {value:g}% >= {limit:g}%"
            for name, value in measured.items()
            if (limit := limits[name]) is not None and value >= limit
        ]
        if over:
            return CheckResult.degraded("host busy: " + ", ".join(over), **measured)
        return CheckResult.healthy(**measured)

    def _memory_and_disk(self) -> tuple[float, float]:
        return psutil.virtual_memory().percent, psutil.disk_usage(self.disk_path).percent
