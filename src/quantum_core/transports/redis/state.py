"""What the Redis Streams transport and its subscriptions share: connections, keys, bounds.

The transport makes one :class:`RedisState` and hands it to every subscription it opens; a
subscription reads and writes through it (the command connection, the packed wire, the
set-aside script, its own blocking reader) and never reaches into the transport.

Bounds: every command connection has a socket timeout (``COMMAND_TIMEOUT`` unless the
client sets one) and ``COMMAND_ATTEMPTS`` tries, so a command on a dead network fails
within ``COMMAND_BUDGET`` seconds; a blocking reader has no socket timeout (its fetch bounds
it) and no retry (``close()`` cutting it must not reconnect it).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.exceptions import ResponseError

from ..._redis import JitteredBackoff
from .dead_letters import SET_ASIDE
from .names import RedisNames
from .reader import use_whole_reply_parser
from .wire import Wire

__all__ = ["COMMAND_ATTEMPTS", "COMMAND_BUDGET", "COMMAND_TIMEOUT", "RedisState"]

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
    ) -> None:
        self._pool_class = pool_class
        self._connection_kwargs = connection_kwargs
        self.names = names
        self.claim_idle_ms = claim_idle_ms
        self.dead_letter_maxlen = dead_letter_maxlen
        timeout = connection_kwargs.get("socket_timeout")
        self.command_timeout: float = timeout if timeout else COMMAND_TIMEOUT
        self.fast_path = fast_path
        self.commands = self._client()
        self.wire = Wire(self.commands, fast=fast_path)
        # EVALSHA, and EVAL's script again after NOSCRIPT (a restarted or flushed server)
        self.set_aside = self.commands.register_script(SET_ASIDE)
        self.readers: set[redis.Redis] = set()

    def open_reader(self) -> redis.Redis:
        """A client of its own for one subscription's blocking reads."""
        reader = self._client(blocking=True)
        self.readers.add(reader)
        return reader

    async def release(self, reader: redis.Redis) -> None:
        """Close a subscription's reader."""
        self.readers.discard(reader)
        await reader.aclose(close_connection_pool=True)

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
        await self.commands.aclose(close_connection_pool=True)

    def _client(self, *, blocking: bool = False) -> redis.Redis:
        kwargs = dict(self._connection_kwargs)
        backoff = JitteredBackoff(first=0.05, most=_BACKOFF_CAP)
        kwargs["retry"] = Retry(backoff, retries=COMMAND_ATTEMPTS - 1)
        kwargs["socket_timeout"] = self.command_timeout
        if blocking:  # a blocking read must not time out before its BLOCK does (the reader
            kwargs["socket_timeout"] = None  # bounds it), nor retry after close() cut it
            kwargs["retry"] = Retry(backoff, retries=0)
        use_whole_reply_parser(kwargs, fast=self.fast_path)
        pool = self._pool_class(**kwargs)
        return redis.Redis(connection_pool=pool)
