"""The Redis Streams subscription: one consumer of one consumer group on one stream.

See ``transport.py`` for the layout on the server and the delivery rules. What it shares
with its transport (connections, keys, settings) comes in a ``RedisState`` (``state.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError, ResponseError

from ..._batching import Batcher
from ...bus.transport import Backlog, Delivery, Subscription
from ...errors import DeliveryGoneError, TransportError
from ...logs import get_logger
from .dead_letters import set_aside
from .names import FIELD
from .reader import fields_repr, lean_reader, stream_entries, text
from .state import close_client, drop_connections

if TYPE_CHECKING:
    from .state import RedisState

__all__ = ["RedisSubscription"]

_log = get_logger("quantum_core.bus.redis")


class RedisSubscription(Subscription):
    """One consumer of one group on one stream: XREADGROUP, XACK, XAUTOCLAIM, keep-alive."""

    def __init__(self, state: RedisState, topic: str, group: str, consumer: str) -> None:
        self._state = state
        self._commands = state.commands
        self._wire = state.wire
        self._reader = state.open_reader()
        lean_reader(self._reader, fast=state.fast_path)
        self._topic = topic
        key = self._key = state.names.stream(topic)
        self._group = group
        self._key_bytes, self._group_bytes = key.encode(), group.encode()
        self._consumer = consumer
        self._in_flight: set[bytes] = set()  # delivered here, kept fresh by the keep-alive
        self._unsettled: set[Any] = set()  # their ack or dead letter failed: no longer kept
        self._recovered = False
        self._next_claim = 0.0
        self._claim_cursor: bytes | str = "0-0"
        self._read: asyncio.Task[list[Delivery]] | None = None
        self._acks: Batcher[Sequence[Any]] = Batcher(self._xack)
        self._marks: Batcher[Sequence[tuple[str, int]]] = Batcher(self._set_handled)
        self._heartbeat = asyncio.create_task(self._keep_alive(), name=f"keep-alive {group}")

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        """Read in a task of its own, shielded: a cancelled fetch leaves the read running.

        redis-py can lose a blocking command's reply, or swallow the cancellation, when the
        task reading it is cancelled (redis/redis-py#2028); shielded, the next fetch (or
        close) collects the reply instead, so nothing is read and dropped.
        """
        if self._read is None:
            self._read = asyncio.create_task(self._fetch(max_count, timeout))
        read = self._read
        try:
            return await asyncio.shield(read)
        finally:
            if read.done():
                self._read = None

    async def _fetch(self, max_count: int, timeout: float) -> list[Delivery]:
        try:
            if not self._recovered:
                deliveries = await self._own_pending(max_count)
                if deliveries:
                    return deliveries
                self._recovered = True
            if time.monotonic() >= self._next_claim:
                deliveries = await self._claim_abandoned(max_count)
                if deliveries:
                    return deliveries
            reply = await self._read_new(max_count, timeout)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise TransportError(f"reading {self._key!r} failed: {exc}") from exc
            await self._recreate_group()
            return []
        except (RedisError, TransportError) as exc:
            # The reply may be lost with its connection, its entries delivered to this
            # consumer all the same: look for them among its own pending ones first.
            self._recovered = False
            if isinstance(exc, TransportError):
                raise
            raise TransportError(f"reading {self._key!r} failed: {exc}") from exc
        return await self._new_deliveries(reply)

    async def _read_new(self, max_count: int, timeout: float) -> Any:
        """XREADGROUP on the reader, given up (and its connection dropped) past its deadline.

        A connection whose network path froze (packets dropped, no reset) would otherwise
        wait for ever: the reply can be no later than BLOCK plus one command's timeout.
        """
        deadline = timeout + self._state.command_timeout
        args = (
            "XREADGROUP",
            "GROUP",
            self._group,
            self._consumer,
            "COUNT",
            max_count,
            "BLOCK",
            max(1, int(timeout * 1000)),
            "STREAMS",
            self._key,
            ">",
        )
        try:
            async with asyncio.timeout(deadline):
                if not self._state.cluster:
                    return await self._reader.execute_command(*args)
                # On a cluster, aimed at the slot's master: redis-py would otherwise ask a
                # node where the key is (COMMAND GETKEYS) before every read; MOVED still works.
                await self._reader.initialize()  # after a failure, discover the slots again
                node = self._reader.get_node_from_key(self._key)
                return await self._reader.execute_command(*args, target_nodes=node)
        except TimeoutError:
            await drop_connections(self._reader)  # the next read connects anew
            raise TransportError(
                f"no reply to XREADGROUP on {self._key!r} within {deadline:g} s (BLOCK "
                f"{timeout:g} s + {self._state.command_timeout:g} s); reconnecting"
            ) from None

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge, sharing one XACK with every other ack of the moment.

        Safe to call again for the same deliveries (XACK of an acknowledged entry does
        nothing). When it fails, the entries are no longer kept fresh: if the bus's next
        try does not come first, another consumer takes them over after ``claim_idle``.
        """
        await self._acks.submit([d.receipt for d in deliveries])

    async def _xack(self, calls: list[Sequence[Any]]) -> None:
        ids = [receipt for receipts in calls for receipt in receipts]
        try:
            reply = await self._wire.call(
                b"XACK", self._key_bytes, self._group_bytes, *map(_as_bytes, ids)
            )
        except RedisError as exc:
            self._unkeep(ids)
            raise TransportError(f"acknowledging on {self._key!r} failed: {exc}") from exc
        if isinstance(reply, Exception):
            self._unkeep(ids)
            raise TransportError(f"acknowledging on {self._key!r} failed: {reply}")
        self._in_flight.difference_update(ids)
        if self._unsettled:
            self._unsettled.difference_update(ids)

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Set the entry aside and acknowledge it, in one script: all or nothing.

        Safe to call again for the same delivery: the script writes only while this
        consumer holds the entry, so a retry after another consumer took it over (or after
        a try whose reply was lost) writes no second record. When it fails, the entry is no
        longer kept fresh, so another consumer takes it over after ``claim_idle``.
        """
        receipt = delivery.receipt
        try:
            stored = await set_aside(
                self._state, self._topic, self._group, self._consumer, receipt, record
            )
        except RedisError as exc:
            self._unkeep([receipt])
            dead_key = self._state.names.dead_letters(self._topic)
            raise TransportError(f"dead-lettering on {dead_key!r} failed: {exc}") from exc
        self._in_flight.discard(receipt)
        self._unsettled.discard(receipt)
        if stored == -1:
            raise DeliveryGoneError(
                f"entry {text(receipt)} of {self._key!r} is held by another consumer of "
                f"{self._group!r} now: no dead letter written, it is handled there"
            )

    def _unkeep(self, ids: list[Any]) -> None:
        """Stop keeping these entries fresh, so a live consumer can take them over."""
        self._in_flight.difference_update(ids)
        self._unsettled.update(ids)

    async def mark_handled(self, event_ids: Sequence[str], ttl: float) -> None:
        """SET a key per event that expires after ``ttl``, sharing one round trip per moment."""
        ttl_ms = max(1, int(ttl * 1000))
        await self._marks.submit([(self._handled_key(event_id), ttl_ms) for event_id in event_ids])

    async def _set_handled(self, calls: list[Sequence[tuple[str, int]]]) -> None:
        try:
            async with self._commands.pipeline(transaction=False) as pipe:
                for items in calls:
                    for key, ttl_ms in items:
                        pipe.set(key, b"1", px=ttl_ms)
                await pipe.execute()
        except (RedisError, RedisClusterException) as exc:  # the latter: a cluster's pipeline
            raise TransportError(
                f"recording handled events of {self._group!r} failed: {exc}"
            ) from exc

    async def was_handled(self, event_id: str) -> bool:
        """EXISTS the group's key for ``event_id`` (it expires with its ttl)."""
        key = self._handled_key(event_id)
        try:
            return bool(await self._commands.exists(key))
        except RedisError as exc:
            raise TransportError(f"checking {key!r} failed: {exc}") from exc

    def _handled_key(self, event_id: str) -> str:
        return self._state.names.handled(self._topic, self._group, event_id)

    async def backlog(self) -> Backlog:
        """Pending and lag of the group, from XINFO GROUPS (lag needs Redis 7)."""
        try:
            groups = await self._commands.xinfo_groups(self._key)
        except RedisError as exc:
            raise TransportError(f"reading groups of {self._key!r} failed: {exc}") from exc
        for info in groups:
            if text(info.get("name")) == self._group:
                lag = info.get("lag")
                return Backlog(pending=int(info["pending"]), lag=None if lag is None else int(lag))
        return Backlog(pending=None, lag=None)

    async def close(self) -> None:
        """Stop the keep-alive; what is still in flight stays pending for another consumer.

        Takes at most one command timeout: removing the consumer name from the group is
        tidying, not worth waiting on a broker that does not answer.
        """
        self._heartbeat.cancel()
        await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self._read is not None:  # a read (or claim) still waiting: stop it, cut its
            self._read.cancel()  # connection; what it would have brought stays pending
            await close_client(self._reader)
            await asyncio.gather(self._read, return_exceptions=True)
        if not self._in_flight and not self._unsettled:  # deleting it would drop its entries
            # the group may be gone with the server, or the server not answer: nothing to tidy
            with contextlib.suppress(RedisError, TimeoutError):
                async with asyncio.timeout(self._state.command_timeout):
                    await self._commands.xgroup_delconsumer(self._key, self._group, self._consumer)
        await self._state.release(self._reader)

    async def _own_pending(self, max_count: int) -> list[Delivery]:
        """Take back what this consumer name holds from a previous life, before new events."""
        pending = await self._commands.xpending_range(
            self._key, self._group, min="-", max="+", count=max_count, consumername=self._consumer
        )
        fresh = [
            p
            for p in pending
            if p["message_id"] not in self._in_flight and p["message_id"] not in self._unsettled
        ]
        if not fresh:
            return []
        ids: list[Any] = [p["message_id"] for p in fresh]
        counts = {text(p["message_id"]): int(p["times_delivered"]) + 1 for p in fresh}
        claimed = await self._commands.xclaim(self._key, self._group, self._consumer, 0, ids)
        return await self._deliveries(claimed, counts=counts)

    async def _claim_abandoned(self, max_count: int) -> list[Delivery]:
        """XAUTOCLAIM entries idle for longer than claim_idle: their consumer is gone."""
        self._next_claim = time.monotonic() + self._state.claim_idle_ms / 4000
        reply = await self._commands.xautoclaim(
            self._key,
            self._group,
            self._consumer,
            self._state.claim_idle_ms,
            start_id=self._claim_cursor,
            count=max_count,
        )
        self._claim_cursor = reply[0] if reply else "0-0"
        claimed = list(_entries_of(reply[1])) if reply else []
        if not claimed:
            return []
        self._next_claim = 0.0  # there may be more: look again on the next fetch
        counts = await self._delivery_counts([entry_id for entry_id, _ in claimed])
        _log.warning(
            "abandoned_events_claimed",
            stream=self._key,
            group=self._group,
            count=len(claimed),
        )
        return await self._deliveries(claimed, counts=counts)

    async def _delivery_counts(self, ids: list[Any]) -> dict[str, int]:
        pending = await self._commands.xpending_range(
            self._key, self._group, min=ids[0], max=ids[-1], count=len(ids) * 2 + 10
        )
        return {text(p["message_id"]): int(p["times_delivered"]) for p in pending}

    async def _new_deliveries(self, reply: Any) -> list[Delivery]:
        """Deliveries of a raw XREADGROUP reply (``reader.py``): first deliveries."""
        entries = stream_entries(reply, FIELD)
        deliveries = [Delivery(data, entry_id, 1) for entry_id, data in entries if data is not None]
        self._in_flight.update(d.receipt for d in deliveries)
        if len(deliveries) < len(entries):
            await self._ack_vanished([entry_id for entry_id, data in entries if data is None])
        return deliveries

    async def _deliveries(
        self,
        entries: Any,
        *,
        delivery_count: int = 1,
        counts: dict[str, int] | None = None,
    ) -> list[Delivery]:
        deliveries: list[Delivery] = []
        vanished: list[Any] = []
        for entry_id, fields in _entries_of(entries):
            if fields is None:  # trimmed or deleted while pending: nothing left to handle
                vanished.append(entry_id)
                continue
            data = fields.get(FIELD)
            if data is None:  # written by someone else: let the bus set it aside
                data = fields_repr(fields)
            count = counts.get(text(entry_id), delivery_count) if counts else delivery_count
            self._in_flight.add(entry_id)
            deliveries.append(Delivery(data, entry_id, max(count, 1)))
        if vanished:
            await self._ack_vanished(vanished)
        return deliveries

    async def _ack_vanished(self, ids: list[Any]) -> None:
        """Entries trimmed or deleted while pending: nothing is left to handle."""
        await self._commands.xack(self._key, self._group, *ids)
        _log.warning("pending_events_vanished", stream=self._key, count=len(ids))

    async def _recreate_group(self) -> None:
        """The group (or the whole stream) was lost: recreate it from the start, never the end.

        Whatever was published between the loss and now is still in the stream; starting
        from its end would skip it.
        """
        _log.warning("consumer_group_recreated", stream=self._key, group=self._group)
        await self._state.create_group(self._key, self._group, "0")
        self._recovered = False

    async def _keep_alive(self) -> None:
        """Reset the idle time of what is in flight, so no live consumer looks dead."""
        interval = self._state.claim_idle_ms / 3000
        failing = False  # warn once per outage, not every interval
        while True:
            await asyncio.sleep(interval)
            ids: list[Any] = list(self._in_flight)
            if not ids:
                continue
            try:
                await self._commands.xclaim(
                    self._key, self._group, self._consumer, 0, ids, justid=True
                )
            except RedisError as exc:
                log = _log.debug if failing else _log.warning
                log("keep_alive_failed", stream=self._key, error=str(exc))
                failing = True
            else:
                failing = False


def _entries_of(items: Any) -> Iterator[tuple[Any, dict[bytes, bytes] | None]]:
    """Yield (id, fields) pairs from however deeply redis-py nested them."""
    for item in items or ():
        if (
            isinstance(item, tuple | list)
            and len(item) == 2
            and isinstance(item[0], bytes | str)
            and (item[1] is None or isinstance(item[1], dict))
        ):
            yield item[0], item[1]
        elif isinstance(item, tuple | list):
            yield from _entries_of(item)


def _as_bytes(entry_id: bytes | str) -> bytes:
    return entry_id if type(entry_id) is bytes else str(entry_id).encode()
