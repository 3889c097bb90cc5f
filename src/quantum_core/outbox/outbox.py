"""Outbox: events written in the caller's PostgreSQL transaction, forwarded by a relay.

An order row and its ``trade.execution.completed`` event commit together or not at all:
``publish`` inserts the event through the caller's connection, inside the caller's
transaction, and a relay (:meth:`Outbox.relay`) publishes committed events on the bus.
See docs/outbox.md for the guarantee, the guard against commits out of order, and the knobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .._checks import check_seconds
from ..bus._checks import check_service_name
from ._connections import ConnectionSource
from .relay import OutboxRelay
from .schema import DEFAULT_TABLE, OutboxSql
from .writer import write_events

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["Outbox", "OutboxStatus"]

_INSTALL_LOCK_OFFSET = 1  # install's lock: beside the relay's, so a running relay never blocks it


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What the outbox holds and whether a relay forwards it.

    Attributes:
        table: The outbox table.
        backlog: Committed events not yet forwarded.
        oldest_unsent_seconds: Age of the oldest of them; None when there is none.
        sent_kept: Forwarded events still in the table (deleted after the retention).
        sent_total: Events forwarded since the table was installed (re-sends not counted).
        last_advance_seconds: Seconds since the relay last advanced its cursor.
        relay_active: True when a relay holds the table's lock.
    """

    table: str
    backlog: int
    oldest_unsent_seconds: float | None
    sent_kept: int
    sent_total: int
    last_advance_seconds: float
    relay_active: bool

    def to_dict(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return asdict(self)


class Outbox:
    """The transactional outbox of one PostgreSQL table.

    Args:
        target: A DSN (``postgresql://user:password@host:5432/db``), for which the outbox
            opens the connections it needs (``install``, ``status``, one per relay), or an
            asyncpg pool to borrow them from. Your writes use your own connection.
        table: The outbox table (``name`` or ``schema.name``); its cursor lives in
            ``<table>_relay``.
        service_name: The ``source`` of the events written (the bus's ``service_name``).
        connect_timeout: Seconds to open (or borrow) a connection.

    Examples:
        An order row and its event, in one transaction:

        >>> async with pool.acquire() as connection, connection.transaction():
        ...     await connection.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
        ...     await outbox.publish(connection, "trade.execution.completed", {"id": order_id})
    """

    def __init__(
        self,
        target: Any,
        table: str = DEFAULT_TABLE,
        *,
        service_name: str = "outbox",
        connect_timeout: float = 10.0,
    ) -> None:
        self._sql = OutboxSql.of(table)
        self._service = check_service_name(service_name)
        self._source = ConnectionSource(
            target, connect_timeout=check_seconds("connect_timeout", connect_timeout, positive=True)
        )

    @property
    def table(self) -> str:
        """The outbox table."""
        return self._sql.table

    async def install(self) -> None:
        """Create the table, its cursor and its NOTIFY trigger if missing.

        Idempotent, and safe to run from several processes at once (they take turns on an
        advisory lock).
        """
        space, key = self._sql.lock_keys
        connection = await self._source.acquire()
        try:
            async with connection.transaction():
                await connection.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", space + _INSTALL_LOCK_OFFSET, key
                )
                await connection.execute(self._sql.create)
        finally:
            await self._source.release(connection)

    async def publish(
        self,
        connection: Any,
        event_type: str,
        payload: dict[str, Any] | BaseModel,
        trace_id: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Write one event in ``connection``'s open transaction; return its event id.

        The event commits with the transaction, and the relay publishes it after the
        commit; if the transaction rolls back, no one ever hears of it. The trace id is
        ``trace_id``, else the current ``trace_context``, else a new one.

        Raises:
            RuntimeError: no transaction is open on ``connection``.
            TypeError, ValueError: the event is not one the bus can publish (nothing is
                written).
        """
        (event_id,) = await write_events(
            connection, self._sql, self._service, event_type, (payload,), trace_id, headers
        )
        return event_id

    async def publish_many(
        self,
        connection: Any,
        event_type: str,
        payloads: Iterable[dict[str, Any] | BaseModel],
        trace_id: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> list[str]:
        """Write several events of one type in one statement; return their ids in order."""
        return await write_events(
            connection, self._sql, self._service, event_type, payloads, trace_id, headers
        )

    def relay(
        self,
        bus: EventBus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        lock_interval: float = 1.0,
        retention: float = 3600.0,
        query_timeout: float = 10.0,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 5.0,
    ) -> OutboxRelay:
        """A relay that forwards this outbox's committed events to ``bus``'s transport.

        Args:
            bus: The :class:`~quantum_core.EventBus` to publish on (started or not).
            batch_size: Events read, published and marked per round.
            poll_interval: Seconds between looks when no NOTIFY came (the fallback).
            lock_interval: Seconds between a standby relay's tries to take over.
            retention: Seconds a forwarded event stays in the table (``math.inf``: kept).
            query_timeout: Seconds one statement may take before the connection counts as
                lost (a frozen network shows as an outage, not a hang).
            retry_backoff: Seconds before the first retry after a failure, doubling with
                jitter, at most ``retry_backoff_max``.
            retry_backoff_max: The longest wait between two retries.
        """
        return OutboxRelay(
            self._source,
            self._sql,
            bus,
            batch_size=batch_size,
            poll_interval=poll_interval,
            lock_interval=lock_interval,
            retention=retention,
            query_timeout=query_timeout,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
        )

    async def status(self) -> OutboxStatus:
        """Read the backlog, what is kept, and whether a relay is active."""
        connection = await self._source.acquire()
        try:
            row = await connection.fetchrow(self._sql.status, *self._sql.lock_keys)
        finally:
            await self._source.release(connection)
        oldest = row["oldest_age"]
        return OutboxStatus(
            table=self._sql.table,
            backlog=row["backlog"],
            oldest_unsent_seconds=None if oldest is None else float(oldest),
            sent_kept=row["sent_kept"],
            sent_total=row["sent_total"],
            last_advance_seconds=float(row["since_advance"]),
            relay_active=row["relays_active"] > 0,
        )

    def __repr__(self) -> str:
        return f"<Outbox table={self._sql.table!r} target={self._source.describe()}>"
