"""The outbox tests' PostgreSQL: the shared server, and a table of the test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from quantum_core import Outbox
from service_helpers import service_missing

DSN_VARIABLE = "QUANTUM_CORE_TEST_POSTGRES_DSN"
_USERS = ("postgres", "root")


async def postgres_dsn() -> str:
    """The shared PostgreSQL (``$QUANTUM_CORE_TEST_POSTGRES_DSN``, else 127.0.0.1:5432/test)."""
    candidates = (
        [os.environ[DSN_VARIABLE]]
        if os.environ.get(DSN_VARIABLE)
        else [f"postgresql://{user}@127.0.0.1:5432/test" for user in _USERS]
    )
    for dsn in candidates:
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError):
            continue
        await connection.close()
        return dsn
    service_missing("PostgreSQL at 127.0.0.1:5432 (database test, user postgres or root)")
    return None


def new_table() -> str:
    """A table name no other test (or helper) uses."""
    return f"qc_test_outbox_{uuid.uuid4().hex[:12]}"


async def drop_outbox(dsn: str, table: str) -> None:
    """Drop the table, its cursor table and its trigger function."""
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(
            f'DROP TABLE IF EXISTS "{table}", "{table}_relay"; '
            f'DROP FUNCTION IF EXISTS "{table}_wake"() CASCADE'
        )
    finally:
        await connection.close()


@asynccontextmanager
async def installed_outbox(dsn: str, **options: object) -> AsyncIterator[Outbox]:
    """An installed outbox on a table of its own, dropped afterwards."""
    table = new_table()
    outbox = Outbox(dsn, table, **options)  # type: ignore[arg-type]
    try:
        await outbox.install()
        yield outbox
    finally:
        await drop_outbox(dsn, table)
