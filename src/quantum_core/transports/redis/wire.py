"""How the transport's hot commands (XADD batches, XACK) reach Redis: :class:`Wire`.

The fast path skips redis-py's per-command machinery. redis-py's pipeline builds each
command from keyword arguments, encodes it argument by argument and reads each reply
through its own timed ``read_response`` (an event-loop timer per reply): for a batch of
small XADDs that cost more than everything else publishing did. Here every XADD of a batch
shares one packed prefix (key, trim, field), only the message differs, and the replies are
read straight from the connection's parser (ours, see ``parser.py``, or hiredis),
under one timeout for the batch. The connection, its handshake, retries and reconnects
stay redis-py's.

The fast path reads redis-py's private ``_parser``; on a redis-py it was not tested with
(``quantum_core._redis.fast_path_tested``) the same commands go through redis-py's public
pipeline instead, with the same results.

Both give back a cancellation that redis-py lost: on Python 3.11 ``asyncio.wait_for``
(which redis-py sends a command with, under a socket timeout) drops a cancel that comes as
the send completes, and a publisher in a loop would never stop on Ctrl-C (3 times in 5).
The cancel may have been asked for before the call began (Ctrl-C's handler runs between
any two bytecodes, the ``CancelledError`` waits for the next suspension), so on 3.11 a
call that returns in a task being cancelled raises ``CancelledError`` after its round trip
(what it sent is stored). Python 3.12's ``wait_for`` keeps cancels: nothing to do there.

With ``wait_replicas=N``, a batch ends with ``WAIT N`` on the connection its XADDs went
on (WAIT counts the replicas that have this connection's writes): fewer than N within the
wait turns every entry's reply into an error, since a failover now could lose them. On a
cluster, redis-py's ClusterPipeline sends each master's commands on one connection, in
order: a WAIT aimed at the master of a stream's slot follows that stream's XADDs; an XADD
that was redirected (the slot moved during the batch) is not covered, and says so.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ClusterError, RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Wire", "pack_command", "pack_xadds", "round_trip", "xadd_prefix"]


class Wire:
    """XADD batches and single commands on ``client``: the fast path, or redis-py's public one.

    Replies come back as values, an error reply as a ``ResponseError`` (not raised);
    connection failures raise redis-py's errors after the client's retries.
    """

    def __init__(
        self, client: Any, *, fast: bool, cluster: bool = False, wait_replicas: int = 0
    ) -> None:
        self.client = client
        self.fast = fast and not cluster
        self.cluster = cluster
        self.wait_replicas = wait_replicas
        self.wait_ms = 1000

    def _wait(self) -> list[bytes]:
        return [b"WAIT", b"%d" % self.wait_replicas, b"%d" % self.wait_ms]

    async def xadds(
        self, batches: Sequence[tuple[str, Sequence[bytes]]], trim: list[bytes], field: bytes
    ) -> list[Any]:
        """XADD each message of each (stream key, messages), in order, in one round trip."""
        wait = self.wait_replicas > 0
        if self.cluster:
            replies = await self._cluster_xadds(batches, trim, field)
        elif self.fast:
            packed: list[bytes] = []
            prefixes: dict[str, bytes] = {}  # a hundred callers of one stream: one prefix
            for key, messages in batches:
                prefix = prefixes.get(key)
                if prefix is None:
                    prefix = prefixes[key] = xadd_prefix(key, trim, field)
                packed += pack_xadds(prefix, messages)
            count = sum(len(messages) for _, messages in batches)
            if wait:
                packed.append(pack_command(*self._wait()))
            replies = await round_trip(self.client, packed, count + wait)
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, messages in batches:
                    for message in messages:
                        pipe.execute_command("XADD", key, *trim, b"*", field, message)
                if wait:
                    pipe.execute_command(*self._wait())
                replies = await pipe.execute(raise_on_error=False)
        if wait and not self.cluster:
            replies = self._waited(replies[:-1], replies[-1])
        _raise_lost_cancel()
        return replies

    async def _cluster_xadds(
        self, batches: Sequence[tuple[str, Sequence[bytes]]], trim: list[bytes], field: bytes
    ) -> list[Any]:
        """The XADDs through a ClusterPipeline, each master's WAIT after its streams' XADDs.

        Each XADD names the master of its slot (``target_nodes``): redis-py then skips
        finding the key in every command (a third of a batch's cost); a MOVED reply is
        still followed by the key, and the pipeline's retries route by the key too.
        """
        client = self.client
        try:
            async with client.pipeline(transaction=False) as pipe:  # finds the slots if due
                masters: dict[str, Any] = {}  # by name, in the order first named
                aimed: dict[str, str] = {}  # stream key -> the master it was sent to
                for key, messages in batches:
                    node = client.get_node_from_key(key)
                    aimed[key] = node.name
                    masters.setdefault(node.name, node)
                    for message in messages:
                        pipe.execute_command(
                            "XADD", key, *trim, b"*", field, message, target_nodes=node
                        )
                if self.wait_replicas:
                    for node in masters.values():
                        pipe.execute_command(*self._wait(), target_nodes=node)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            if not self.wait_replicas:
                return replies
            count = sum(len(messages) for _, messages in batches)
            waits = dict(zip(masters, replies[count:], strict=True))
            out: list[Any] = []
            start = 0
            for key, messages in batches:
                end = start + len(messages)
                if client.get_node_from_key(key).name == aimed[key]:
                    out += self._waited(replies[start:end], waits[aimed[key]])
                else:  # the slot moved while the batch was out: its WAIT went elsewhere
                    moved = ResponseError(
                        f"the slot of {key!r} moved during the publish: stored, but which "
                        "replicas have it is unknown (wait_replicas)"
                    )
                    out += [r if isinstance(r, Exception) else moved for r in replies[start:end]]
                start = end
            return out
        except RedisClusterException as exc:  # no master for a slot: a RedisError here
            raise ClusterError(str(exc) or type(exc).__name__) from exc

    def _waited(self, replies: list[Any], waited: Any) -> list[Any]:
        """The XADD replies, each an error if WAIT saw fewer replicas than asked for."""
        if not isinstance(waited, Exception) and int(waited) >= self.wait_replicas:
            return replies
        seen = waited if isinstance(waited, Exception) else f"only {int(waited)} confirmed"
        error = ResponseError(
            f"stored on the master, but {self.wait_replicas} replica(s) did not confirm it "
            f"within {self.wait_ms} ms ({seen}): a failover now could lose it"
        )
        return [reply if isinstance(reply, Exception) else error for reply in replies]

    async def call(self, *args: bytes) -> Any:
        """Send one command of byte-string arguments; return its reply."""
        if self.fast:
            (reply,) = await round_trip(self.client, [pack_command(*args)], 1)
        else:
            try:  # a str command name: RedisCluster looks the key's position up by name
                reply = await self.client.execute_command(args[0].decode(), *args[1:])
            except ResponseError as error:
                reply = error
        _raise_lost_cancel()
        return reply


_WAIT_FOR_LOSES_CANCELS = sys.version_info < (3, 12)


def _raise_lost_cancel() -> None:
    """Raise the ``CancelledError`` redis-py may have swallowed, in a task being cancelled."""
    if _WAIT_FOR_LOSES_CANCELS:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError


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
