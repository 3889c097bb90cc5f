"""Execution's fills in PostgreSQL, each fill and its completion event in one transaction.

With ``--postgres DSN`` the executor records every fill in a table and publishes
``execution.order.filled`` through the transactional outbox: the row and the event commit
together or not at all, and the outbox's relay puts the event on the bus once committed.
Without a DSN (``make demo``) the executor publishes on the bus directly and needs no server.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from quantum_core import EventBus, Outbox
from quantum_core.outbox import OutboxRelay

# The SQL names only the demo's own tables (made here from a fixed prefix); values are parameters.
# ruff: noqa: S608


class PostgresFills:
    """The fills table and its outbox, on a pool of their own; tables named after ``prefix``."""

    def __init__(self, pool: asyncpg.Pool, prefix: str, service_name: str) -> None:
        self._pool = pool
        self._fills = f"{prefix}_fills"
        self.outbox = Outbox(pool, f"{prefix}_outbox", service_name=service_name)

    @classmethod
    async def open(cls, dsn: str, *, service_name: str, prefix: str | None = None) -> PostgresFills:
        """Connect, and create the tables if missing (a new ``prefix`` when none is given)."""
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        fills = cls(pool, prefix or f"quantum_demo_{uuid.uuid4().hex[:8]}", service_name)
        await fills.outbox.install()
        await pool.execute(
            f'CREATE TABLE IF NOT EXISTS "{fills._fills}" (order_id text PRIMARY KEY, '
            "symbol text NOT NULL, action text NOT NULL, quantity double precision NOT NULL, "
            "price double precision NOT NULL, trace_id text, filled_at timestamptz NOT NULL "
            "DEFAULT now())"
        )
        return fills

    async def record(self, event_type: str, order: dict[str, Any], trace_id: str | None) -> str:
        """Insert the fill and write its event, in one transaction; return the event id."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                f'INSERT INTO "{self._fills}" (order_id, symbol, action, quantity, price, '
                "trace_id) VALUES ($1, $2, $3, $4, $5, $6)",
                order["order_id"],
                order["symbol"],
                order["action"],
                order["quantity"],
                order["price"],
                trace_id,
            )
            return await self.outbox.publish(connection, event_type, order, trace_id)

    async def count(self) -> int:
        """How many fills the table holds."""
        return int(await self._pool.fetchval(f'SELECT count(*) FROM "{self._fills}"'))

    def relay(self, bus: EventBus) -> OutboxRelay:
        """The relay that forwards committed fills' events to ``bus``."""
        return self.outbox.relay(bus, poll_interval=0.2)

    async def close(self, *, drop: bool) -> None:
        """Close the pool; with ``drop``, delete the tables first (the demo's own)."""
        try:
            if drop:
                table = self.outbox.table
                await self._pool.execute(
                    f'DROP TABLE IF EXISTS "{self._fills}", "{table}", "{table}_relay"; '
                    f'DROP FUNCTION IF EXISTS "{table}_wake"() CASCADE'
                )
        finally:
            await self._pool.close()
