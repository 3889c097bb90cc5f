"""XADD batches without redis-py's per-command machinery: packed once, replies parsed at once.

redis-py's pipeline builds each command from keyword arguments, encodes it argument by
argument and reads each reply through its own timed ``read_response`` (an event-loop timer
per reply): for a batch of small XADDs that cost more than everything else publishing did.
Here every XADD of a batch shares one packed prefix (key, trim, field), only the message
differs, and the replies are read straight from the connection's parser (ours, see
``_redis_reader.py``, or hiredis), under one timeout for the batch. The connection, its
handshake, retries and reconnects stay redis-py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["pack_command", "pack_xadds", "round_trip", "xadd_prefix"]


def pack_command(*args: bytes) -> bytes:
    """The RESP bytes of one command of byte-string arguments (an XACK of many ids, say)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def xadd_prefix(key: str, trim: Sequence[bytes], field: bytes) -> bytes:
    """The RESP bytes of ``XADD key <trim> * field``, waiting for the message as last argument."""
    args = [b"XADD", key.encode(), *trim, b"*", field]
    return b"*%d\r\n" % (len(args) + 1) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def pack_xadds(prefix: bytes, messages: Sequence[bytes]) -> list[bytes]:
    """The XADD of every message, as pieces for one socket write."""
    parts: list[bytes] = []
    for message in messages:
        parts += (prefix, b"$%d\r\n" % len(message), message, b"\r\n")
    return parts


async def round_trip(client: redis.Redis, packed: list[bytes], count: int) -> list[Any]:
    """Send ``count`` packed commands on a pooled connection; return their replies in order.

    An error reply is returned as a ``ResponseError``, not raised. A connection error is
    retried by the client's own retry policy (the whole batch is sent again: at least once,
    as redis-py's pipelines do); any other failure drops the connection, whose socket may
    still hold replies, before it goes back to the pool.
    """
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call, unused-ignore]
    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            lambda: _send_and_read(connection, packed, count),
            lambda _error: connection.disconnect(),
        )
        return replies
    finally:
        await pool.release(connection)


async def _send_and_read(connection: AbstractConnection, packed: list[bytes], count: int) -> Any:
    await connection.send_packed_command(packed)
    # The parser itself, not connection.read_response, which arms a timer per reply and
    # raises error replies; every redis-py parser returns them as values and handles pushes.
    parser: Any = connection._parser  # private in redis-py (typed as the sync base); tested
    try:
        async with asyncio.timeout(connection.socket_timeout):
            return [await parser.read_response(disable_decoding=True) for _ in range(count)]
    except TimeoutError:
        await connection.disconnect(nowait=True)
        raise RedisTimeoutError(f"Timeout reading {count} replies from Redis") from None
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
