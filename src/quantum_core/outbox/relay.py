"""The relay: forwards committed outbox rows to the bus, one relay active per table.

One connection of its own does everything, on purpose: it holds the session-level advisory
lock that makes this relay the active one (a relay that dies, or loses its connection,
loses the lock with it, and a standby takes over within ``lock_interval``), it LISTENs for
the insert trigger's NOTIFY, and it reads rows and advances the cursor. A cursor update on
a connection that lost the lock cannot succeed, so two relays never both advance.

Each round: read up to ``batch_size`` rows after the cursor and below the transaction
horizon, publish them in order (consecutive rows of one type in one ``publish``), then
advance the cursor in one statement. A crash between the publish and the advance sends the
batch again (at-least-once; the event ids are the same, so ``idempotent=True`` handlers
run once). NOTIFY only wakes the relay early: the cursor is the truth, and a poll every
``poll_interval`` seconds finds what a lost notification did not announce.

PostgreSQL or the broker unreachable: the relay drops its connection (and the lock), waits
with the library's jittered backoff and tries again, logging once when the outage starts
and once when it ends; then it catches up from the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .._checks import check_int, check_seconds
from ..bus._outage import Outage
from ..logs import get_logger
from ._connections import ConnectionSource
from .schema import OutboxSql

if TYPE_CHECKING:
    from ..bus import EventBus

__all__ = ["OutboxRelay"]

_log = get_logger("quantum_core.outbox")
_HELD_BACK_FIRST = 0.005  # seconds: a woken relay that found nothing looks again this soon
_RETENTION_BATCH = 10_000  # rows one DELETE removes at most, so no statement runs for long
_RETENTION_BATCHES = 10  # DELETEs per retention round at most; the next round goes on
_STOP_GRACE = 5.0  # seconds stop() lets a round in flight finish before cancelling it


class OutboxRelay:
    """Forward committed outbox events to an :class:`~quantum_core.EventBus`'s transport.

    Made by :meth:`Outbox.relay <quantum_core.Outbox.relay>`; run it with ``async with`` or
    :meth:`start`/:meth:`stop`. Several processes may run one: one is active, the others
    stand by and take over when it goes.
    """

    def __init__(
        self,
        source: ConnectionSource,
        sql: OutboxSql,
        bus: EventBus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        lock_interval: float = 1.0,
        retention: float = 3600.0,
        query_timeout: float = 10.0,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 5.0,
    ) -> None:
        self._source = source
        self._sql = sql
        self._bus = bus
        self._batch_size = check_int("batch_size", batch_size)
        self._poll = check_seconds("poll_interval", poll_interval, positive=True)
        self._lock_interval = check_seconds("lock_interval", lock_interval, positive=True)
        self._retention = check_seconds("retention", retention, allow_infinite=True)
        self._timeout = check_seconds("query_timeout", query_timeout, positive=True)
        self._retry_first = check_seconds("retry_backoff", retry_backoff, positive=True)
        self._retry_most = check_seconds("retry_backoff_max", retry_backoff_max, positive=True)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # the first attempt ended: active, standing by, or failed
        self._active = False
        self._forwarded = 0
        # The server process of the connection this relay lost while active: after a network
        # that froze, it may still hold the lock (the server has not noticed), so the relay
        # ends it rather than stand by behind itself until the server's keepalive gives up.
        self._stale_pid: int | None = None

    @property
    def is_active(self) -> bool:
        """True while this relay holds the lock and forwards events."""
        return self._active

    @property
    def forwarded(self) -> int:
        """Events this relay published since it started (re-sends after a crash included)."""
        return self._forwarded

    async def start(self) -> None:
        """Start relaying; returns once the first try to connect and lock has ended.

        It does not raise when PostgreSQL is unreachable: the relay keeps trying in the
        background (see the log), as it does after any outage.
        """
        if self._task is not None:
            return
        self._stopping = False
        self._settled.clear()
        self._wake.clear()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._sql.table}")
        settled = asyncio.ensure_future(self._settled.wait())
        await asyncio.wait((settled, self._task), return_when=asyncio.FIRST_COMPLETED)
        settled.cancel()
        if self._task.done():  # a bug, not an outage: show it here rather than never
            self._task.result()

    async def stop(self) -> None:
        """Finish the round in flight (at most a few seconds), release the lock, stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_GRACE)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "active" if self._active else "running" if self._task else "stopped"
        return f"<OutboxRelay table={self._sql.table!r} {state} forwarded={self._forwarded}>"

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        outage = Outage(
            "outbox_relay",
            recovered="outbox_relay_recovered",
            first=self._retry_first,
            most=self._retry_most,
            table=self._sql.table,
        )
        while not self._stopping:
            connection: Any = None
            broken = False
            try:
                connection = await self._source.acquire()
                if await self._lock(connection, outage):
                    await self._relay(connection, outage)
            except Exception as error:  # an outage of PostgreSQL or of the broker
                broken = True
                if self._active:
                    self._stale_pid = connection.get_server_pid()
                self._settled.set()
                delay = outage.failed(error)
                self._wake.clear()  # a NOTIFY that came before the failure must not cut the wait
                if not self._stopping:
                    await self._sleep(delay)
            finally:
                if self._active:
                    _log.info("outbox_relay_inactive", table=self._sql.table)
                self._active = False
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await self._source.release(connection, broken=broken)

    async def _lock(self, connection: Any, outage: Outage) -> bool:
        """Wait until this relay holds the table's lock (True), or is stopped (False)."""
        standing_by = False
        while not self._stopping:
            held = await connection.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", *self._sql.lock_keys, timeout=self._timeout
            )
            outage.ended()
            if held:
                self._stale_pid = None
                return True
            if self._stale_pid is not None and await self._end_stale_session(connection):
                continue
            self._settled.set()
            if not standing_by:
                standing_by = True
                _log.info("outbox_relay_standing_by", table=self._sql.table)
            self._wake.clear()
            if not self._stopping:
                await self._sleep(self._lock_interval)
        return False

    async def _end_stale_session(self, connection: Any) -> bool:
        """End this relay's own lost session if it holds the lock; True: try the lock again."""
        holder = await connection.fetchval(
            self._sql.lock_holder, *self._sql.lock_keys, timeout=self._timeout
        )
        if holder != self._stale_pid:
            self._stale_pid = None  # another relay holds it, or nobody: nothing of ours
            return False
        ended = await connection.fetchval(
            "SELECT pg_terminate_backend($1)", holder, timeout=self._timeout
        )
        if not ended:
            self._stale_pid = None  # not allowed, or gone: stand by as usual
            return False
        _log.info("outbox_relay_ended_stale_session", table=self._sql.table, pid=holder)
        await self._sleep(0.05)  # the lock goes when that server process has exited
        return True

    async def _relay(self, connection: Any, outage: Outage) -> None:
        """Forward rows for as long as this relay is active and not stopped."""
        await connection.add_listener(self._sql.channel, self._notified)
        connection.add_termination_listener(self._connection_lost)
        try:
            await self._forward_rounds(connection, outage)
        finally:
            connection.remove_termination_listener(self._connection_lost)
        # Stopped: UNLISTEN, bounded. After a failure nothing is undone: the connection is
        # dropped, and an UNLISTEN on a frozen one would wait forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                connection.remove_listener(self._sql.channel, self._notified), self._timeout
            )

    async def _forward_rounds(self, connection: Any, outage: Outage) -> None:
        sql = self._sql
        cursor: tuple[str, int] = tuple(
            await connection.fetchrow(sql.read_cursor, timeout=self._timeout)
        )
        self._active = True
        self._settled.set()
        _log.info("outbox_relay_active", table=sql.table, cursor=f"{cursor[0]}/{cursor[1]}")
        cleaned = -math.inf
        held_back: float | None = None  # the next quick look, while announced rows wait
        ahead: list[Any] = []  # the next batch, read while this one was being published
        while not self._stopping:
            woken = self._wake.is_set()
            self._wake.clear()
            rows = ahead or await self._fetch(connection, cursor)
            outage.ended()
            if rows:
                cursor, ahead = await self._forward(connection, rows)
            if time.monotonic() - cleaned >= min(60.0, self._retention):
                await self._clean(connection)  # also under a steady load, once a minute
                cleaned = time.monotonic()
            if ahead or len(rows) == self._batch_size:
                continue  # more is waiting: no sleep
            # Woken, and nothing below the horizon: the announced rows wait behind an older
            # transaction still open, whose end announces nothing. Look again soon, then
            # less and less often (5 ms, 10, 20...), until the poll takes over.
            if rows:
                held_back = None
            elif woken:
                held_back = _HELD_BACK_FIRST
            elif held_back is not None:
                held_back = held_back * 2 if held_back * 2 < self._poll else None
            await self._sleep(self._poll if held_back is None else held_back)

    async def _fetch(self, connection: Any, cursor: tuple[str, int]) -> list[Any]:
        """Up to ``batch_size`` rows after ``cursor`` and below the transaction horizon."""
        rows: list[Any] = await connection.fetch(
            self._sql.fetch, cursor[0], cursor[1], self._batch_size, timeout=self._timeout
        )
        return rows

    async def _forward(self, connection: Any, rows: list[Any]) -> tuple[tuple[str, int], list[Any]]:
        """Publish ``rows`` in order, then advance the cursor past them.

        A full batch says more is probably waiting: the next one is read from PostgreSQL
        while this one is published on the broker, and returned (the cursor it starts
        after is in memory; the stored cursor moves only once this batch is published).
        """
        last = (rows[-1][0], rows[-1][1])
        reading = (
            asyncio.ensure_future(self._fetch(connection, last))
            if len(rows) == self._batch_size
            else None
        )
        try:
            transport = self._bus.transport
            for event_type, group in itertools.groupby(rows, key=lambda row: row[2]):
                await transport.publish(event_type, [row[3] for row in group])
            ahead = [] if reading is None else await reading
        except BaseException:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(BaseException):  # the connection is dropped anyway
                    await reading
            raise
        await connection.execute(self._sql.advance, *last, len(rows), timeout=self._timeout)
        self._forwarded += len(rows)
        return last, ahead

    async def _clean(self, connection: Any) -> None:
        """Delete rows sent longer than ``retention`` ago, a bounded amount per round."""
        if self._retention == math.inf:
            return
        for _ in range(_RETENTION_BATCHES):
            done = await connection.execute(
                self._sql.delete_sent, self._retention, _RETENTION_BATCH, timeout=self._timeout
            )
            if int(done.rpartition(" ")[2]) < _RETENTION_BATCH:
                return

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when a NOTIFY, a lost connection or stop() wakes us."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    def _connection_lost(self, *_: object) -> None:
        self._wake.set()
