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
``publisher.py``). Keys: ``names.py``; connections and their bounds: ``state.py``; URL
options: ``url.py``.

Delivery: XREADGROUP on a connection of its own (so a blocking read never delays a publish),
XACK after the handler returned, XAUTOCLAIM of what a dead consumer left pending once it has
been idle for ``claim_idle``. A live consumer keeps its own in-flight entries fresh (XCLAIM
JUSTID, which resets their idle time) every third of ``claim_idle``, so a slow handler is
never mistaken for a dead one. An entry whose acknowledgement or dead letter failed is no
longer kept fresh: after ``claim_idle`` another consumer of the group takes it over.

Setting aside (``dead_letters.py``): one Lua script checks that this consumer still holds
the entry, XADDs the record to the dead-letter stream, then XACKs the entry. Redis refusing
the XADD (the key holds another type, the server is out of memory) stops the script before
the XACK: the entry stays pending. An entry no longer held is left alone, no second record:
when another consumer took it over, ``dead_letter`` raises ``DeliveryGoneError`` (it is
handled there); when it is pending no more (an earlier try went through and only its reply
was lost), it returns.

Bounds: every command connection has a socket timeout (``COMMAND_TIMEOUT`` unless the
client sets one) and ``COMMAND_ATTEMPTS`` tries, so a command on a dead network fails
within ``COMMAND_BUDGET`` seconds; the blocking read waits its BLOCK time plus one command
timeout, then drops its connection and reads again on a new one. Every connection has TCP
keepalive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from ..._checks import check_int, check_name, check_seconds
from ..._redis import (
    CLUSTER_SCHEMES,
    cluster_settings,
    connection_settings,
    fast_path_tested,
    is_cluster,
)
from ...bus.abilities import TopicSummary
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from ...errors import TransportError
from . import dead_letters, topics
from .names import FIELD, ClusterNames, RedisNames
from .publisher import RedisPublisher
from .state import COMMAND_ATTEMPTS, COMMAND_BUDGET, COMMAND_TIMEOUT, RedisState
from .subscription import RedisSubscription
from .url import split_options

__all__ = ["COMMAND_ATTEMPTS", "COMMAND_BUDGET", "COMMAND_TIMEOUT", "RedisStreamsTransport"]


class RedisStreamsTransport(Transport):
    """Topics as Redis streams, shared by every process that uses the same Redis and prefix.

    Args:
        client: A ``redis.asyncio.Redis`` client or a ``redis://`` / ``rediss://`` URL; for
            a Redis Cluster, a ``redis.asyncio.cluster.RedisCluster`` client or a
            ``redis+cluster://host:port[,host:port...]`` / ``rediss+cluster://`` URL. A
            client is never closed or changed: the transport opens its own connections with
            the same settings (always reading bytes, so no entry can fail to decode).
        prefix: Namespace of every key the transport writes.
        maxlen: Approximate number of entries each stream keeps (XADD MAXLEN ~); older ones
            are trimmed whether or not every group has read them.
        max_age: Instead of ``maxlen``, keep entries younger than this many seconds (MINID).
        claim_idle: Seconds an entry may sit unacknowledged with a silent consumer before a
            live consumer of the same group takes it over.
        dead_letter_maxlen: Approximate number of entries each dead-letter stream keeps.
        wait_replicas: A publish returns only once this many replicas have its entries
            (Redis ``WAIT``, up to half a command timeout), else it fails: with 0, entries
            a master acknowledged and died before replicating are lost in a failover.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster | str,
        *,
        prefix: str = "quantum_core",
        maxlen: int | None = 1_000_000,
        max_age: float | None = None,
        claim_idle: float = 30.0,
        dead_letter_maxlen: int = 100_000,
        wait_replicas: int = 0,
    ) -> None:
        self.prefix = check_name("prefix", prefix)  # the CLI's --prefix rule too
        if max_age is not None:
            max_age = check_seconds("max_age", max_age, positive=True)
        if maxlen is not None:
            maxlen = check_int("maxlen", maxlen)
        claim_idle = check_seconds("claim_idle", claim_idle, positive=True)
        dead_letter_maxlen = check_int("dead_letter_maxlen", dead_letter_maxlen)
        self._maxlen = None if max_age is not None else maxlen
        self._max_age_ms = None if max_age is None else int(max_age * 1000)
        check_int("wait_replicas", wait_replicas, minimum=0)
        self.cluster = is_cluster(client)
        startup: list[tuple[str, int]] | None = None
        if self.cluster:
            given = cast("RedisCluster | str", client)
            startup, connection_kwargs = cluster_settings(given, owner="RedisStreamsTransport")
            pool_class = None
        else:
            single = cast("redis.Redis | str", client)
            pool_class, connection_kwargs = connection_settings(
                single, owner="RedisStreamsTransport"
            )
        self._state = RedisState(
            pool_class,
            connection_kwargs,
            names=ClusterNames(prefix) if self.cluster else RedisNames(prefix),
            claim_idle_ms=int(claim_idle * 1000),
            dead_letter_maxlen=dead_letter_maxlen,
            fast_path=fast_path_tested(),
            cluster=startup,
            wait_replicas=wait_replicas,
        )
        self.command_timeout = self._state.command_timeout
        self.fast_path = self._state.fast_path
        self._publisher = RedisPublisher(self._state.wire, FIELD, self._trim_args)

    def stream_key(self, topic: str) -> str:
        """The Redis key of ``topic``'s stream."""
        return self._state.names.stream(topic)

    def dead_letter_key(self, topic: str) -> str:
        """The Redis key of ``topic``'s dead-letter stream."""
        return self._state.names.dead_letters(topic)

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """XADD each message; a batch goes in one pipelined round trip.

        Concurrent publishes share pipelines (see ``publisher.py``).
        """
        if self.cluster:  # once: discover the slots, or say the server is no cluster
            await self._state.ready()
        await self._publisher.publish(self.stream_key(topic), messages)

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Create the consumer group if needed (at the stream's end unless ``from_beginning``)."""
        await self._state.ready()
        key = self.stream_key(topic)
        try:
            await self._state.create_group(key, group, "0" if from_beginning else "$")
        except RedisError as exc:
            raise TransportError(f"could not create consumer group {group!r}: {exc}") from exc
        return RedisSubscription(self._state, topic, group, consumer)

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """XRANGE the topic's dead-letter stream from ``start`` (an entry id) on."""
        return await dead_letters.read_dead_letters(self._state, topic, limit, start)

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """XADD ``record`` to the topic's dead-letter stream again (a new id)."""
        await dead_letters.restore_dead_letter(self._state, topic, record)

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """XDEL these entries of the dead-letter stream, or DEL the whole stream for None."""
        return await dead_letters.delete_dead_letters(self._state, topic, ids)

    async def list_topics(self) -> Sequence[TopicSummary]:
        """Every stream under the prefix, with its groups and their consumers (``topics.py``)."""
        await self._state.ready()
        return await topics.list_topics(self._state.commands, self._state.names)

    async def ping(self) -> None:
        """PING the server."""
        await self._state.ready()
        try:
            await self._state.commands.ping()
        except RedisError as exc:
            raise TransportError(f"Redis did not answer PING: {exc}") from exc

    async def close(self) -> None:
        """Close the connections this transport opened."""
        await self._state.close()

    def _trim_args(self) -> list[bytes]:
        """XADD's trimming arguments, approximate (trimmed whole nodes at a time: cheap)."""
        if self._max_age_ms is not None:
            return [b"MINID", b"~", b"%d-0" % (int(time.time() * 1000) - self._max_age_ms)]
        if self._maxlen is not None:
            return [b"MAXLEN", b"~", b"%d" % self._maxlen]
        return []


def transport_from_redis_url(url: str) -> RedisStreamsTransport:
    """Build a transport from a ``redis://``, ``rediss://`` or ``redis+cluster://`` URL.

    ``prefix``, ``maxlen``, ``max_age``, ``claim_idle`` and ``wait_replicas`` may ride in
    the query, as in ``redis://localhost:6379/0?prefix=trading&claim_idle=10``; the rest
    goes to redis-py.
    """
    rest, options = split_options(url)
    return RedisStreamsTransport(rest, **options)


register_transport("redis", transport_from_redis_url)
register_transport("rediss", transport_from_redis_url)
for _scheme in CLUSTER_SCHEMES:
    register_transport(_scheme, transport_from_redis_url)
