"""The guard, as a property: whatever the order of inserts, commits, rollbacks and relay reads,
reading below the transaction horizon after a cursor yields every committed row once, in
(transaction id, id) order, and never a rolled-back one (once the horizon has passed them).

The relay's own statement (``OutboxSql.fetch``) runs against the real PostgreSQL, with
transactions on separate connections interleaved as hypothesis chooses; small batches make
the cursor move often.
"""

import asyncio

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outbox_helpers import drop_outbox, new_table, postgres_dsn
from quantum_core import Outbox
from quantum_core.outbox.schema import OutboxSql, check_table
from quantum_core.testing import eventually

TRANSACTIONS = st.lists(
    st.tuples(
        st.integers(1, 3),  # rows the transaction inserts
        st.booleans(),  # commits (else rolls back)
        st.integers(0, 20),  # when it inserts
        st.integers(1, 20),  # how long after that it ends
    ),
    min_size=1,
    max_size=4,
)
READS = st.lists(st.integers(0, 42), max_size=6)  # when the relay reads


@pytest.fixture(scope="module")
def table():
    dsn = asyncio.run(postgres_dsn())
    name = new_table()
    asyncio.run(Outbox(dsn, name).install())
    yield dsn, name
    asyncio.run(drop_outbox(dsn, name))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(transactions=TRANSACTIONS, reads=READS)
def test_every_committed_row_once_in_order_never_a_rolled_back_one(table, transactions, reads):
    dsn, name = table
    committed, read = asyncio.run(_schedule(dsn, name, transactions, reads))
    assert read == committed


async def _schedule(dsn, name, transactions, reads):
    sql = OutboxSql.of(name)
    relay = await asyncpg.connect(dsn)
    writers = [await asyncpg.connect(dsn) for _ in transactions]
    try:
        await relay.execute(f'TRUNCATE "{name}"')
        steps = [(start, 0, "insert", n) for n, (_, _, start, _) in enumerate(transactions)]
        steps += [(start + d, 1, "end", n) for n, (_, _, start, d) in enumerate(transactions)]
        steps += [(at, 2, "read", None) for at in reads]
        cursor, read, ids = ("0", 0), [], {}
        open_ = {}
        for _, _, what, n in sorted(steps, key=lambda step: step[:2]):
            if what == "insert":
                open_[n] = writers[n].transaction()
                await open_[n].start()
                rows = await writers[n].fetch(
                    f'INSERT INTO "{name}" (event_id, event_type, envelope) '  # noqa: S608
                    "SELECT 'e', 't', '' FROM generate_series(1, $1) RETURNING xid::text, id",
                    transactions[n][0],
                )
                ids[n] = [(row[0], row[1]) for row in rows]
            elif what == "end":
                await (open_.pop(n).commit() if transactions[n][1] else open_.pop(n).rollback())
            else:
                cursor = await _read_all(relay, sql, cursor, read)
        # The horizon is the whole server's: another test's open transaction holds it back
        # for a moment. Every row is read once it has passed them all.
        newest = max(int(xid) for rows in ids.values() for xid, _ in rows)
        await eventually(lambda: _horizon_passed(relay, newest), "the horizon passes our rows")
        await _read_all(relay, sql, cursor, read)
        committed = sorted(
            (int(xid), row_id, (xid, row_id))
            for n, (_, commits, _, _) in enumerate(transactions)
            if commits
            for xid, row_id in ids[n]
        )
        return [key for _, _, key in committed], read
    finally:
        for connection in (relay, *writers):
            await connection.close()


async def _horizon_passed(connection, xid):
    horizon = await connection.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
    return int(horizon) > xid


async def _read_all(relay, sql, cursor, read):
    while rows := await relay.fetch(sql.fetch, cursor[0], cursor[1], 2):
        read.extend((row[0], row[1]) for row in rows)
        cursor = (rows[-1][0], rows[-1][1])
    return cursor


@given(st.text(max_size=120))
def test_a_table_name_that_passes_is_a_plain_identifier(text):
    try:
        table = check_table(text)
    except ValueError:
        return
    schema, _, name = table.rpartition(".")
    assert set(table) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.")
    assert 0 < len(name) <= 48
    assert len(schema) <= 63
    assert not name[0].isdigit()
