"""Writing events into the outbox: through the caller's connection, inside its transaction.

The rows are the bus's own wire envelopes (:func:`~quantum_core.bus.envelope.encode_events`),
so the relay forwards them byte for byte: the event id a handler sees (and an
``idempotent=True`` subscription records) is the one ``publish`` returned, and the trace id
is the writer's. Everything is checked and encoded before the first byte is written: a
payload that cannot be encoded fails the call and leaves the transaction as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from ..bus.envelope import encode_events
from .schema import OutboxSql

__all__ = ["write_events"]


async def write_events(
    connection: Any,
    sql: OutboxSql,
    source: str,
    event_type: str,
    payloads: Iterable[dict[str, Any] | BaseModel],
    trace_id: str | None,
    headers: dict[str, str] | None,
) -> list[str]:
    """Insert the events of one type in the caller's open transaction; return their ids.

    Raises:
        RuntimeError: ``connection`` has no transaction open (the events would commit on
            their own, which is what the outbox is there to prevent).
        TypeError, ValueError: a payload, the event type, the trace id or the headers are
            not what the bus publishes; nothing was written.
    """
    in_transaction = getattr(connection, "is_in_transaction", None)
    if not callable(in_transaction):
        raise TypeError(
            f"outbox.publish needs the asyncpg connection of your transaction, got "
            f"{type(connection).__name__}"
        )
    if not in_transaction():
        raise RuntimeError(
            "outbox.publish needs an open transaction on the connection, so the events "
            "commit (or roll back) with your rows: call it inside `async with "
            "connection.transaction():`"
        )
    encoded, event_ids = encode_events(source, event_type, tuple(payloads), trace_id, headers)
    if len(encoded) == 1:
        await connection.execute(sql.insert_one, event_ids[0], event_type, encoded[0])
    elif encoded:
        await connection.execute(sql.insert_many, event_ids, event_type, encoded)
    return event_ids
