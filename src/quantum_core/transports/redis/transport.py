"""The Redis Streams transport: durable topics and consumer groups on one Redis.

Layout on the server (``prefix`` defaults to ``quantum_core``):

* ``{prefix}:stream:{event type}``: one stream per event type; each entry holds one field,
  ``event``, whose value is the envelope (see ``quantum_core/bus/envelope.py``).
* one consumer group per subscribing service and handler, named ``{service}:{handler}``;
  each process reads as its own consumer, ``{host}-{pid}-{random}``.
* ``{prefix}:dead:{event type}``: dead letters of that event type, one entry per event
  set aside, with the group, the error and the original entry.
* ``{prefix}:done:{group}:{event id}``: for ``idempotent=True`` subscriptions, a key per
  event the group's handler completed, expiring after the subscription's ``idempotency_ttl``.

Publishing: XADD, with the publishes of concurrent tasks sharing pipelines (see
``publisher.py``).

Delivery: XREADGROUP on a connection of its own (so a blocking read never delays a publish),
XACK after the handler returned, XAUTOCLAIM of what a dead consumer left pending once it has
been idle for ``claim_idle``. A live consumer keeps its own in-flight entries fresh (XCLAIM
JUSTID, which resets their idle time) every third of ``claim_idle``, so a slow handler is
never mistaken for a dead one. An entry whose acknowledgement or dead letter failed is no
longer kept fresh: after ``claim_idle`` another consumer of the group takes it over.

Setting aside: one Lua script checks that this consumer still holds the entry, XADDs the
record to the dead-letter stream, then XACKs the entry. Redis refusing the XADD (the key
holds another type, the server is out of memory) stops the script before the XACK: the
entry stays pending. An entry no longer held is left alone, no second record: when another
consumer took it over, ``dead_letter`` raises ``DeliveryGoneError`` (it is handled there);
when it is pending no more (an earlier try went through and only its reply was lost), it
returns.

Bounds: every command connection has a socket timeout (``COMMAND_TIMEOUT`` unless the
client sets one) and ``COMMAND_ATTEMPTS`` tries, so a command on a dead network fails
within ``COMMAND_BUDGET`` seconds; the blocking read waits its BLOCK time plus one command
timeout, then drops its connection and reads again on a new one. Every connection has TCP
keepalive.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from ..._redis import connection_settings, fast_path_tested
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from ...errors import TransportError
from .publisher import RedisPublisher
from .reader import use_whole_reply_parser
from .subscription import FIELD, RedisSubscription, create_group, text
from .wire import Wire

__all__ = ["COMMAND_ATTEMPTS", "COMMAND_BUDGET", "COMMAND_TIMEOUT", "RedisStreamsTransport"]

COMMAND_TIMEOUT = 2.0
"""Seconds a command waits for its reply (unless the client sets ``socket_timeout``)."""
COMMAND_ATTEMPTS = 4
"""Tries per command: a dropped or silent connection is replaced and the command sent again."""
_BACKOFF_CAP = 0.5
COMMAND_BUDGET = COMMAND_ATTEMPTS * COMMAND_TIMEOUT + (COMMAND_ATTEMPTS - 1) * _BACKOFF_CAP
"""The longest a command takes to fail, with the default timeout, when nothing answers."""

_DEAD_FIELD = b"record"
# Set an entry aside and acknowledge it, all or nothing, only while this consumer holds it.
# KEYS: the stream, its dead-letter stream. ARGV: group, consumer, entry id, maxlen, record.
# An error (XPENDING: no group; XADD: wrong type, out of memory) ends the script before
# anything is written or acknowledged.
# Returns 1 when set aside, 0 when the entry is pending no more (an earlier try went through
# and only its reply was lost, or another consumer handled it), -1 when another consumer
# holds it now.
_SET_ASIDE = """
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #held == 0 then
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1) == 0 then return 0 end
  return -1
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'record', ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


class RedisStreamsTransport(Transport):
    """Topics as Redis streams, shared by every process that uses the same Redis and prefix.

    Args:
        client: A ``redis.asyncio.Redis`` client or a ``redis://`` / ``rediss://`` URL. A
            client is never closed or changed: the transport opens its own connections with
            the same settings (always reading bytes, so no entry can fail to decode).
        prefix: Namespace of every key the transport writes.
        maxlen: Approximate number of entries each stream keeps (XADD MAXLEN ~); older ones
            are trimmed whether or not every group has read them.
        max_age: Instead of ``maxlen``, keep entries younger than this many seconds (MINID).
        claim_idle: Seconds an entry may sit unacknowledged with a silent consumer before a
            live consumer of the same group takes it over.
        dead_letter_maxlen: Approximate number of entries each dead-letter stream keeps.
    """

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "quantum_core",
        maxlen: int | None = 1_000_000,
        max_age: float | None = None,
        claim_idle: float = 30.0,
        dead_letter_maxlen: int = 100_000,
    ) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix must be a non-empty string without spaces, got {prefix!r}")
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be a positive number of seconds, got {max_age!r}")
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"maxlen must be at least 1 (or None), got {maxlen!r}")
        if not claim_idle > 0:
            raise ValueError(f"claim_idle must be a positive number of seconds, got {claim_idle!r}")
        self.prefix = prefix
        self._maxlen = None if max_age is not None else maxlen
        self._max_age_ms = None if max_age is None else int(max_age * 1000)
        self._claim_idle_ms = int(claim_idle * 1000)
        self._dead_letter_maxlen = dead_letter_maxlen
        self._pool_class, self._connection_kwargs = connection_settings(
            client, owner="RedisStreamsTransport"
        )
        timeout = self._connection_kwargs.get("socket_timeout")
        self.command_timeout: float = timeout if timeout else COMMAND_TIMEOUT
        self.fast_path = fast_path_tested()
        self._commands = self._client()
        self.wire = Wire(self._commands, fast=self.fast_path)
        self._publisher = RedisPublisher(self.wire, FIELD, self._trim_args)
        # EVALSHA, and EVAL's script again after NOSCRIPT (a restarted or flushed server)
        self.set_aside = self._commands.register_script(_SET_ASIDE)
        self._readers: set[redis.Redis] = set()

    def stream_key(self, topic: str) -> str:
        """The Redis key of ``topic``'s stream."""
        return f"{self.prefix}:stream:{topic}"

    def dead_letter_key(self, topic: str) -> str:
        """The Redis key of ``topic``'s dead-letter stream."""
        return f"{self.prefix}:dead:{topic}"

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """XADD each message; a batch goes in one pipelined round trip.

        Concurrent publishes share pipelines (see ``publisher.py``).
        """
        await self._publisher.publish(self.stream_key(topic), messages)

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Create the consumer group if needed (at the stream's end unless ``from_beginning``)."""
        key = self.stream_key(topic)
        try:
            await create_group(self._commands, key, group, "0" if from_beginning else "$")
        except RedisError as exc:
            raise TransportError(f"could not create consumer group {group!r}: {exc}") from exc
        reader = self._client(blocking=True)
        self._readers.add(reader)
        return RedisSubscription(self, topic, key, group, consumer, reader)

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """XRANGE the topic's dead-letter stream from ``start`` (an entry id) on."""
        key = self.dead_letter_key(topic)
        first = "-" if start is None else _stream_id(start)
        try:
            entries = await self._commands.xrange(key, min=first, max="+", count=limit)
        except RedisError as exc:
            raise TransportError(f"reading dead letters from {key!r} failed: {exc}") from exc
        letters: list[tuple[str, bytes]] = []
        for entry_id, fields in entries or ():
            record = (fields or {}).get(_DEAD_FIELD)
            letters.append(
                (text(entry_id), record if isinstance(record, bytes) else repr(fields).encode())
            )
        return letters

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """XADD ``record`` to the topic's dead-letter stream again (a new id)."""
        key = self.dead_letter_key(topic)
        try:
            await self._commands.xadd(
                key, {_DEAD_FIELD: record}, maxlen=self._dead_letter_maxlen, approximate=True
            )
        except RedisError as exc:
            raise TransportError(f"storing a dead letter in {key!r} failed: {exc}") from exc

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """XDEL these entries of the dead-letter stream, or DEL the whole stream for None."""
        key = self.dead_letter_key(topic)
        try:
            if ids is None:
                async with self._commands.pipeline(transaction=True) as pipe:
                    pipe.xlen(key)
                    pipe.delete(key)
                    count, _ = await pipe.execute()
                return int(count)
            entry_ids = [_stream_id(entry_id) for entry_id in ids]
            return int(await self._commands.xdel(key, *entry_ids)) if entry_ids else 0
        except RedisError as exc:
            raise TransportError(f"deleting dead letters from {key!r} failed: {exc}") from exc

    async def ping(self) -> None:
        """PING the server."""
        try:
            await self._commands.ping()
        except RedisError as exc:
            raise TransportError(f"Redis did not answer PING: {exc}") from exc

    async def close(self) -> None:
        """Close the connections this transport opened."""
        for reader in list(self._readers):
            await self._release(reader)
        await self._commands.aclose(close_connection_pool=True)

    async def _release(self, reader: redis.Redis) -> None:
        self._readers.discard(reader)
        await reader.aclose(close_connection_pool=True)

    def _trim_args(self) -> list[bytes]:
        """XADD's trimming arguments, approximate (trimmed whole nodes at a time: cheap)."""
        if self._max_age_ms is not None:
            return [b"MINID", b"~", b"%d-0" % (int(time.time() * 1000) - self._max_age_ms)]
        if self._maxlen is not None:
            return [b"MAXLEN", b"~", b"%d" % self._maxlen]
        return []

    def _client(self, *, blocking: bool = False) -> redis.Redis:
        kwargs = dict(self._connection_kwargs)
        backoff = ExponentialWithJitterBackoff(base=0.05, cap=_BACKOFF_CAP)
        kwargs["retry"] = Retry(backoff, retries=COMMAND_ATTEMPTS - 1)
        kwargs["socket_timeout"] = self.command_timeout
        if blocking:  # a blocking read must not time out before its BLOCK does (the reader
            kwargs["socket_timeout"] = None  # bounds it), nor retry after close() cut it
            kwargs["retry"] = Retry(backoff, retries=0)
        use_whole_reply_parser(kwargs, fast=self.fast_path)
        pool = self._pool_class(**kwargs)
        return redis.Redis(connection_pool=pool)


def _stream_id(entry_id: str) -> str:
    if isinstance(entry_id, str) and _STREAM_ID.fullmatch(entry_id):
        return entry_id
    raise ValueError(f"not a Redis stream entry id (such as '1700000000000-0'): {entry_id!r}")


_URL_OPTIONS = {"prefix": str, "maxlen": int, "max_age": float, "claim_idle": float}


def transport_from_redis_url(url: str) -> RedisStreamsTransport:
    """Build a transport from a ``redis://`` or ``rediss://`` URL.

    ``prefix``, ``maxlen``, ``max_age`` and ``claim_idle`` may ride in the query, as in
    ``redis://localhost:6379/0?prefix=trading&claim_idle=10``; the rest goes to redis-py.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    for name, value in query:
        if name in _URL_OPTIONS:
            try:
                options[name] = _URL_OPTIONS[name](value)
            except ValueError:
                raise ValueError(
                    f"URL option {name}={value!r} is not a valid {_URL_OPTIONS[name].__name__}"
                ) from None
    rest = urlencode([(k, v) for k, v in query if k not in _URL_OPTIONS])
    return RedisStreamsTransport(urlunsplit(parts._replace(query=rest)), **options)


register_transport("redis", transport_from_redis_url)
register_transport("rediss", transport_from_redis_url)
