"""Dead letters on Redis Streams: a stream per topic, written together with the ack.

Setting aside is one Lua script (:data:`SET_ASIDE`): it checks that this consumer still
holds the entry, XADDs the record to the dead-letter stream, then XACKs the entry. Redis
refusing the XADD (the key holds another type, the server is out of memory) stops the script
before the XACK: the entry stays pending. An entry no longer held is left alone, no second
record. Reading is XRANGE, deleting XDEL (a replay's claim) or DEL (a purge); a dead
letter's id is its entry id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ...errors import TransportError
from .names import DEAD_FIELD
from .reader import text

if TYPE_CHECKING:
    from .state import RedisState

__all__ = [
    "SET_ASIDE",
    "delete_dead_letters",
    "read_dead_letters",
    "restore_dead_letter",
    "set_aside",
]

# Set an entry aside and acknowledge it, all or nothing, only while this consumer holds it.
# KEYS: the stream, its dead-letter stream. ARGV: group, consumer, entry id, maxlen, record.
# An error (XPENDING: no group; XADD: wrong type, out of memory) ends the script before
# anything is written or acknowledged.
# Returns 1 when set aside, 0 when the entry is pending no more (an earlier try went through
# and only its reply was lost, or another consumer handled it), -1 when another consumer
# holds it now.
SET_ASIDE = """
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #held == 0 then
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1) == 0 then return 0 end
  return -1
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'record', ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
# Count and delete a whole dead-letter stream, in one step (one key: any Redis, any cluster).
_DELETE_ALL = """
local count = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return count
"""
_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


async def set_aside(
    state: RedisState, topic: str, group: str, consumer: str, entry_id: Any, record: bytes
) -> int:
    """Run :data:`SET_ASIDE`: 1 set aside, 0 pending no more, -1 another consumer holds it.

    Raises redis-py's errors (the caller decides what they mean for the entry).
    """
    names = state.names
    stored: int = await state.set_aside(
        keys=[names.stream(topic), names.dead_letters(topic)],
        args=[group, consumer, entry_id, state.dead_letter_maxlen, record],
    )
    return stored


async def read_dead_letters(
    state: RedisState, topic: str, limit: int, start: str | None
) -> list[tuple[str, bytes]]:
    """XRANGE the topic's dead-letter stream from ``start`` (an entry id) on."""
    key = state.names.dead_letters(topic)
    first = "-" if start is None else _stream_id(start)
    try:
        entries = await state.commands.xrange(key, min=first, max="+", count=limit)
    except RedisError as exc:
        raise TransportError(f"reading dead letters from {key!r} failed: {exc}") from exc
    letters: list[tuple[str, bytes]] = []
    for entry_id, fields in entries or ():
        record = (fields or {}).get(DEAD_FIELD)
        letters.append(
            (text(entry_id), record if isinstance(record, bytes) else repr(fields).encode())
        )
    return letters


async def restore_dead_letter(state: RedisState, topic: str, record: bytes) -> None:
    """XADD ``record`` to the topic's dead-letter stream again (a new id)."""
    key = state.names.dead_letters(topic)
    try:
        await state.commands.xadd(
            key, {DEAD_FIELD: record}, maxlen=state.dead_letter_maxlen, approximate=True
        )
    except RedisError as exc:
        raise TransportError(f"storing a dead letter in {key!r} failed: {exc}") from exc


async def delete_dead_letters(state: RedisState, topic: str, ids: Sequence[str] | None) -> int:
    """XDEL these entries of the dead-letter stream, or DEL the whole stream for None."""
    key = state.names.dead_letters(topic)
    try:
        if ids is None:
            return int(await state.commands.eval(_DELETE_ALL, 1, key))
        entry_ids = [_stream_id(entry_id) for entry_id in ids]
        return int(await state.commands.xdel(key, *entry_ids)) if entry_ids else 0
    except RedisError as exc:
        raise TransportError(f"deleting dead letters from {key!r} failed: {exc}") from exc


def _stream_id(entry_id: str) -> str:
    if isinstance(entry_id, str) and _STREAM_ID.fullmatch(entry_id):
        return entry_id
    raise ValueError(f"not a Redis stream entry id (such as '1700000000000-0'): {entry_id!r}")
