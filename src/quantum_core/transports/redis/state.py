"""What the Redis Streams transport and its subscriptions share: connections, keys, bounds.

The transport makes one :class:`RedisState` and hands it to every subscription it opens; a
subscription reads and writes through it (the command connection, the packed wire, the
set-aside script, its own blocking reader) and never reaches into the transport.

Bounds: every command connection has a socket timeout (``COMMAND_TIMEOUT`` unless the
client sets one) and ``COMMAND_ATTEMPTS`` tries, so a command on a dead network fails
within ``COMMAND_BUDGET`` seconds; a blocking reader has no socket timeout (its fetch bounds
it) and no retry (``close()`` cutting it must not reconnect it).

On a Redis Cluster (``cluster`` given) every client is a ``RedisCluster`` of our own, with
the same bounds: it follows MOVED and ASK replies, and finds the new master after a
failover. The packed fast path is per connection, so a cluster takes redis-py's public one.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from ..._redis import JitteredBackoff, not_a_cluster, open_cluster
from ...errors import TransportError
from .dead_letters import SET_ASIDE
from .names import RedisNames
from .reader import use_whole_reply_parser
from .wire import Wire

__all__ = [
    "COMMAND_ATTEMPTS",
    "COMMAND_BUDGET",
    "COMMAND_TIMEOUT",
    "RedisState",
    "close_client",
    "drop_connections",
]

COMMAND_TIMEOUT = 2.0
"""Seconds a command waits for its reply (unless the client sets ``socket_timeout``)."""
COMMAND_ATTEMPTS = 4
"""Tries per command: a dropped or silent connection is replaced and the command sent again."""
_BACKOFF_CAP = 0.5
COMMAND_BUDGET = COMMAND_ATTEMPTS * COMMAND_TIMEOUT + (COMMAND_ATTEMPTS - 1) * _BACKOFF_CAP
"""The longest a command takes to fail, with the default timeout, when nothing answers."""


class RedisState:
    """The connections, names and settings of one transport, shared with its subscriptions.

    Attributes:
        names: The keys of the transport's prefix.
        claim_idle_ms: Milliseconds an entry may sit with a silent consumer before a live
            one takes it over (the keep-alive refreshes in-flight entries every third).
        dead_letter_maxlen: Approximate entries each dead-letter stream keeps.
        command_timeout: Seconds a command waits for its reply.
        fast_path: Whether the installed redis-py is one the packed wire and the whole-reply
            parser were tested with.
        commands: The connection pool every command but the blocking read goes through.
        wire: XADD batches and XACKs on ``commands``, packed by us on the fast path.
        set_aside: The dead-letter script (``dead_letters.py``), registered on ``commands``.
        readers: The blocking-read clients of open subscriptions, closed with the transport.
        cluster: Whether the server is a Redis Cluster (every client a ``RedisCluster``).
        wait_replicas: Replicas that must have a publish's entries before it returns (WAIT).
    """

    def __init__(
        self,
        pool_class: Any,
        connection_kwargs: dict[str, Any],
        *,
        names: RedisNames,
        claim_idle_ms: int,
        dead_letter_maxlen: int,
        fast_path: bool,
        cluster: list[tuple[str, int]] | None = None,
        wait_replicas: int = 0,
    ) -> None:
        self._startup = cluster
        self.cluster = cluster is not None
        self.wait_replicas = wait_replicas
        self._ready = not self.cluster
        self._pool_class = pool_class
        self._connection_kwargs = connection_kwargs
        self.names = names
        self.claim_idle_ms = claim_idle_ms
        self.dead_letter_maxlen = dead_letter_maxlen
        timeout = connection_kwargs.get("socket_timeout")
        self.command_timeout: float = timeout if timeout else COMMAND_TIMEOUT
        self.fast_path = fast_path and not self.cluster
        self.commands: Any = self._client()
        self.wire = Wire(
            self.commands, fast=self.fast_path, cluster=self.cluster, wait_replicas=wait_replicas
        )
        self.wire.wait_ms = max(1, int(self.command_timeout * 500))  # answered in time
        # EVALSHA, and EVAL's script again after NOSCRIPT (a restarted or flushed server)
        self.set_aside = self.commands.register_script(SET_ASIDE)
        self.readers: set[Any] = set()

    async def ready(self) -> None:
        """On a cluster, discover its slots once; a server that is no cluster fails clearly.

        Raises:
            TransportError: naming the node that is no cluster, or saying none answered.
        """
        if self._ready:
            return
        try:
            await self.commands.initialize()
        except (RedisError, RedisClusterException, OSError) as exc:
            reason = await not_a_cluster(self._startup or [], self._connection_kwargs)
            nodes = ", ".join(f"{host}:{port}" for host, port in self._startup or [])
            raise TransportError(
                reason or f"no node of the Redis Cluster at {nodes} answered: {exc}"
            ) from exc
        self._ready = True

    def open_reader(self) -> Any:
        """A client of its own for one subscription's blocking reads."""
        reader = self._client(blocking=True)
        self.readers.add(reader)
        return reader

    async def release(self, reader: Any) -> None:
        """Close a subscription's reader."""
        self.readers.discard(reader)
        await close_client(reader)

    async def create_group(self, key: str, group: str, start: str) -> None:
        """XGROUP CREATE (and the stream with it) at ``start``; an existing group is kept."""
        try:
            await self.commands.xgroup_create(key, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def close(self) -> None:
        """Close every connection: the readers, then the command pool."""
        for reader in list(self.readers):
            await self.release(reader)
        await close_client(self.commands)

    def _client(self, *, blocking: bool = False) -> Any:
        kwargs = dict(self._connection_kwargs)
        backoff = JitteredBackoff(first=0.05, most=_BACKOFF_CAP)
        kwargs["retry"] = Retry(backoff, retries=COMMAND_ATTEMPTS - 1)
        kwargs["socket_timeout"] = self.command_timeout
        if blocking:  # a blocking read must not time out before its BLOCK does (the reader
            kwargs["socket_timeout"] = None  # bounds it), nor retry after close() cut it
            kwargs["retry"] = Retry(backoff, retries=0)
        if self._startup is not None:
            return open_cluster(self._startup, kwargs)
        use_whole_reply_parser(kwargs, fast=self.fast_path)
        pool = self._pool_class(**kwargs)
        return redis.Redis(connection_pool=pool)


async def close_client(client: Any) -> None:
    """Close a client of ours and its connections, one Redis or a cluster."""
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        await client.aclose(close_connection_pool=True)


async def drop_connections(client: Any) -> None:
    """Drop a client's connections (the next command connects anew), one Redis or a cluster."""
    if isinstance(client, RedisCluster):
        await client.aclose()  # its next command discovers the slots again
    else:
        await client.connection_pool.disconnect()
