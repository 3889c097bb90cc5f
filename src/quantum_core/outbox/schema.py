"""The outbox's table, its cursor, its lock and its channel: every SQL statement, in one place.

Why one module: the guarantee lives in these statements. A row stores the inserting
transaction's id (``xid8``); the relay reads only rows whose transaction id is below
``pg_snapshot_xmin(pg_current_snapshot())`` (every transaction before the horizon has
ended, and none can start there again), in ``(xid, id)`` order after its stored cursor. A
row whose transaction commits after a later one's is then read late, never skipped
(Watermill's PostgreSQL offsets adapter uses the same guard).

Names are checked identifiers, formatted into the SQL once per outbox; values always travel
as parameters.
"""

# The SQL is built from checked identifiers (check_table) only; values are always parameters.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .._checks import check_text

__all__ = ["DEFAULT_TABLE", "OutboxSql", "check_table"]

DEFAULT_TABLE = "quantum_core_outbox"
_MAX_TABLE = 48  # PostgreSQL names are at most 63 bytes; the longest suffix added is 7
_TABLE = re.compile(rf"(?:[a-z_][a-z0-9_]{{0,62}}\.)?[a-z_][a-z0-9_]{{0,{_MAX_TABLE - 1}}}")
_LOCK_SPACE = 0x51C0  # the first key of every outbox's advisory lock: "this is an outbox relay"
# The relay's lock in pg_locks (two int4 keys show as classid, objid and objsubid 2; advisory
# locks are per database, pg_locks shows every database's).
_OUR_LOCK = (
    "locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def check_table(table: object, name: str = "table") -> str:
    """Return ``table`` (``name`` or ``schema.name``, lowercase) if usable, else raise."""
    return check_text(
        name,
        table,
        pattern=_TABLE,
        expected=(
            "a lowercase PostgreSQL name of letters, digits and '_' (at most "
            f"{_MAX_TABLE} characters), optionally after 'schema.', such as {DEFAULT_TABLE!r}"
        ),
    )


@dataclass(frozen=True, slots=True)
class OutboxSql:
    """The statements of one outbox table (and of its cursor table, ``<table>_relay``)."""

    table: str
    create: str
    insert_one: str
    insert_many: str
    read_cursor: str
    fetch: str
    advance: str
    delete_sent: str
    status: str
    lock_holder: str
    channel: str
    lock_keys: tuple[int, int]

    @classmethod
    def of(cls, table: str) -> OutboxSql:
        """Build the statements for ``table`` (checked with :func:`check_table`)."""
        check_table(table)
        schema, _, name = table.rpartition(".")
        quoted = f'"{schema}"."{name}"' if schema else f'"{name}"'
        relay = f'"{schema}"."{name}_relay"' if schema else f'"{name}_relay"'
        digest = hashlib.blake2b(table.encode(), digest_size=4).digest()
        key = int.from_bytes(digest, "big") & 0x7FFF_FFFF  # positive: pg_locks shows it as is
        channel = f"{name}_wake"
        trigger_function = f'"{schema}"."{name}_wake"' if schema else f'"{name}_wake"'
        create = f"""
CREATE TABLE IF NOT EXISTS {quoted} (
    id bigint GENERATED ALWAYS AS IDENTITY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id text NOT NULL,
    event_type text NOT NULL,
    envelope bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (xid, id)
);
CREATE TABLE IF NOT EXISTS {relay} (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_xid xid8 NOT NULL DEFAULT '0',
    last_id bigint NOT NULL DEFAULT 0,
    sent bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {relay} (only_row) VALUES (true) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION {trigger_function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END $$;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgrelid = '{quoted}'::regclass AND tgname = '{name}_wake'
    ) THEN
        CREATE TRIGGER "{name}_wake" AFTER INSERT ON {quoted}
            FOR EACH STATEMENT EXECUTE FUNCTION {trigger_function}();
    END IF;
END $$;
"""
        return cls(
            table=table,
            create=create,
            insert_one=(
                f"INSERT INTO {quoted} (event_id, event_type, envelope) VALUES ($1, $2, $3)"
            ),
            insert_many=(
                f"INSERT INTO {quoted} (event_id, event_type, envelope) "
                "SELECT e, $2, b FROM unnest($1::text[], $3::bytea[]) WITH ORDINALITY "
                "AS rows (e, b, n) ORDER BY n"
            ),
            read_cursor=f"SELECT last_xid::text, last_id FROM {relay}",
            # The rows in transaction order: ORDER BY names the table's xid8 column, never
            # the output column xid::text (a bare "xid" would sort as text, "10" < "9").
            fetch=(
                f"SELECT o.xid::text AS xid_text, o.id, o.event_type, o.envelope FROM {quoted} o "
                "WHERE (o.xid, o.id) > ($1::text::xid8, $2) "
                "AND o.xid < pg_snapshot_xmin(pg_current_snapshot()) "
                "ORDER BY o.xid, o.id LIMIT $3"
            ),
            advance=(
                f"UPDATE {relay} SET last_xid = $1::text::xid8, last_id = $2, "
                "sent = sent + $3, updated_at = now() "
                "WHERE (last_xid, last_id) < ($1::text::xid8, $2)"
            ),
            delete_sent=(
                f"DELETE FROM {quoted} WHERE (xid, id) IN ("
                f"SELECT o.xid, o.id FROM {quoted} o, {relay} r "
                "WHERE (o.xid, o.id) <= (r.last_xid, r.last_id) "
                "AND o.created_at < now() - $1 * interval '1 second' "
                "ORDER BY o.xid, o.id LIMIT $2)"
            ),
            status=(
                "SELECT "
                f"(SELECT count(*) FROM {quoted} o, {relay} r "
                " WHERE (o.xid, o.id) > (r.last_xid, r.last_id)) AS backlog, "
                f"(SELECT extract(epoch FROM now() - min(o.created_at)) FROM {quoted} o, "
                f" {relay} r WHERE (o.xid, o.id) > (r.last_xid, r.last_id)) AS oldest_age, "
                f"(SELECT count(*) FROM {quoted} o, {relay} r "
                " WHERE (o.xid, o.id) <= (r.last_xid, r.last_id)) AS sent_kept, "
                f"(SELECT sent FROM {relay}) AS sent_total, "
                f"(SELECT extract(epoch FROM now() - updated_at) FROM {relay}) AS since_advance, "
                f"(SELECT count(*) FROM pg_locks WHERE {_OUR_LOCK}) AS relays_active"
            ),
            lock_holder=(f"SELECT pid FROM pg_locks WHERE {_OUR_LOCK}"),
            channel=channel,
            lock_keys=(_LOCK_SPACE, key),
        )
