"""The Kafka subscription: one replica in its group's consumer group, committing after handling.

See ``transport.py`` for the layout and the delivery rules. Offsets are committed only up
to the lowest offset still in flight on each partition (``offsets.py``). The rebalance
listener stops fetching a revoked partition, waits (at most ``revoke_wait``) for its
records in flight, commits what finished and only then lets the partition go; what was not
committed is read again by the next owner. A subscription that closes stores a copy of
each record it gave up (with the next attempt number and its group in headers) before it
commits past it, so the next attempt is counted wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from ...bus.transport import Backlog, Delivery, Subscription
from ...errors import TransportError
from ...logs import get_logger
from .names import ATTEMPT_HEADER, FOR_GROUP_HEADER
from .offsets import PartitionOffsets

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from .state import KafkaState

__all__ = ["KafkaSubscription"]

_log = get_logger("quantum_core.bus.kafka")
_JOIN_BOUND = 60.0  # seconds subscribe() waits for the group to assign partitions
_CLOSE_BOUND = 10.0  # seconds close() gives the broker for copies, the commit and leaving


@dataclass(frozen=True, slots=True)
class _Receipt:
    """Where a delivered record came from; ``offsets`` tells its assignment apart."""

    offsets: PartitionOffsets
    tp: TopicPartition
    offset: int
    key: bytes | None
    attempt: int


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._subscription.release(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._subscription.take(assigned)


class KafkaSubscription(Subscription):
    """One replica of one group: fetch with ``getmany``, commit after handling."""

    def __init__(
        self,
        state: KafkaState,
        topic: str,
        group: str,
        consumer: str,
        *,
        from_beginning: bool,
    ) -> None:
        self._state = state
        self._event_type = topic
        self._topic = state.names.topic(topic)
        self._group = group
        self._group_id = state.names.group_id(topic, group)
        self._from_beginning = from_beginning
        settings = state.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=state.servers,
            group_id=self._group_id,
            client_id=f"quantum_core-{consumer}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # only for an offset lost on the broker: read it all
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            rebalance_timeout_ms=int((settings.revoke_wait + settings.session_timeout) * 1000),
            request_timeout_ms=int(
                max(settings.request_timeout, settings.session_timeout + 5) * 1000
            ),
            retry_backoff_ms=200,
            # An empty fetch is answered after 0.1 s (aiokafka's default is 0.5 s). Kafka
            # answers a waiting fetch as soon as records arrive; Tansu waits the whole time,
            # so this is also the latency of a quiet topic there.
            fetch_max_wait_ms=100,
        )
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._held: dict[tuple[TopicPartition, int], Delivery] = {}
        self._assigned = asyncio.Event()
        self._settled = asyncio.Event()
        self._closed = False

    # -- joining and rebalances -----------------------------------------------------------

    async def start(self) -> None:
        """Join the group and wait for the first assignment (the group's start is then fixed)."""
        await self._state.started(self._consumer)
        self._consumer.subscribe([self._topic], listener=_Listener(self))
        try:
            async with asyncio.timeout(_JOIN_BOUND):
                await self._assigned.wait()
        except TimeoutError:
            await self._stop_consumer()
            raise TransportError(
                f"Kafka at {self._state.shown} assigned no partitions of {self._topic!r} to "
                f"group {self._group_id!r} within {_JOIN_BOUND:.0f}s"
            ) from None

    async def take(self, assigned: set[TopicPartition]) -> None:
        """Start each assigned partition at its committed offset, fixing it for a new group.

        A partition the group never committed starts at its end (or its beginning with
        ``from_beginning``), committed at once, so what is published after ``subscribe()``
        returned is never skipped, whoever reads it.
        """
        try:
            async with asyncio.timeout(self._state.settings.request_timeout):
                await self._start_partitions(assigned)
        except (KafkaError, TimeoutError) as exc:
            # fetch() starts tracking such a partition at the first record it reads.
            _log.warning("kafka_assignment_not_read", group=self._group_id, error=repr(exc))
        self._assigned.set()

    async def _start_partitions(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        fresh: list[TopicPartition] = []
        for tp in assigned:
            committed = await consumer.committed(tp)
            if committed is None:
                fresh.append(tp)
            else:
                self._partitions[tp] = PartitionOffsets(committed)
                consumer.seek(tp, committed)
        if fresh:
            ends = await (
                consumer.beginning_offsets(fresh)
                if self._from_beginning
                else consumer.end_offsets(fresh)
            )
            await consumer.commit({tp: ends[tp] for tp in fresh})
            for tp in fresh:
                self._partitions[tp] = PartitionOffsets(ends[tp])
                consumer.seek(tp, ends[tp])

    async def release(self, revoked: set[TopicPartition]) -> None:
        """Stop fetching revoked partitions, wait for their records in flight, commit, let go."""
        mine = [tp for tp in revoked if tp in self._partitions]
        if not mine:
            return
        self._consumer.pause(*mine)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._state.settings.revoke_wait
        while any(self._partitions[tp].in_flight for tp in mine) and not self._closed:
            self._settled.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._settled.wait()
        left = sum(self._partitions[tp].in_flight for tp in mine)
        if left:
            _log.warning(
                "kafka_partitions_released_in_flight",
                group=self._group_id,
                in_flight=left,
                revoke_wait=self._state.settings.revoke_wait,
            )
        await self._commit(mine, quietly=True)
        for tp in mine:
            offsets = self._partitions.pop(tp)
            for offset in offsets.unfinished():
                self._held.pop((tp, offset), None)

    # -- fetching and settling ------------------------------------------------------------

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        """Take up to ``max_count`` records of the assigned partitions, waiting ``timeout``."""
        if self._closed:
            return []
        try:
            batches = await self._consumer.getmany(
                timeout_ms=int(timeout * 1000), max_records=max_count
            )
        except KafkaError as exc:
            raise TransportError(f"reading {self._topic!r} failed: {exc!r}") from exc
        deliveries: list[Delivery] = []
        skipped: list[TopicPartition] = []
        for tp, records in batches.items():
            offsets = self._partitions.get(tp)
            if offsets is None:
                if not records or tp not in self._consumer.assignment():
                    continue  # revoked meanwhile: its next owner reads these
                offsets = self._partitions[tp] = PartitionOffsets(records[0].offset)
            for record in records:
                offsets.fetched(record.offset)
                attempt, for_group = _read_headers(record)
                if for_group is not None and for_group != self._group:
                    offsets.finished(record.offset)  # another group's copy
                    skipped.append(tp)
                    continue
                receipt = _Receipt(offsets, tp, record.offset, record.key, attempt)
                delivery = Delivery(record.value or b"", receipt, attempt)
                self._held[(tp, record.offset)] = delivery
                deliveries.append(delivery)
        if skipped:
            await self._commit(set(skipped), quietly=True)
        return deliveries

    def _finish(self, deliveries: Sequence[Delivery]) -> set[TopicPartition]:
        touched: set[TopicPartition] = set()
        for delivery in deliveries:
            receipt: _Receipt = delivery.receipt
            if self._partitions.get(receipt.tp) is receipt.offsets:  # still ours
                receipt.offsets.finished(receipt.offset)
                self._held.pop((receipt.tp, receipt.offset), None)
                touched.add(receipt.tp)
        self._settled.set()
        return touched

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Commit each touched partition up to its lowest offset still in flight."""
        await self._commit(self._finish(deliveries))

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Store the record on the dead-letter topic (acks=all), then commit past the event.

        The record's key names the group, partition and offset it came from: if we die
        between the two steps, the event comes back and is set aside again, and readers
        show only the first record of that key.
        """
        receipt: _Receipt = delivery.receipt
        origin = f"{self._group}|{receipt.tp.partition}|{receipt.offset}".encode()
        try:
            await self._state.write_dead_letter(self._event_type, record, origin)
        except KafkaError as exc:
            raise TransportError(f"dead-lettering on {self._topic!r} failed: {exc!r}") from exc
        await self.ack([delivery])

    async def _commit(
        self, tps: set[TopicPartition] | list[TopicPartition], *, quietly: bool = False
    ) -> None:
        positions: dict[TopicPartition, int] = {}
        for tp in tps:
            offsets = self._partitions.get(tp)
            position = offsets.to_commit() if offsets is not None else None
            if offsets is not None and position is not None:
                positions[tp] = position
        if not positions:
            return
        try:
            async with asyncio.timeout(self._state.settings.request_timeout):
                await self._consumer.commit(positions)  # aiokafka retries some errors for ever
        except TimeoutError:
            if quietly:
                _log.warning("kafka_commit_timed_out", group=self._group_id)
                return
            raise TransportError(
                f"Kafka at {self._state.shown} did not take a commit of {self._group_id!r} "
                f"within {self._state.settings.request_timeout}s"
            ) from None
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved the partitions on: their next owner reads from the last commit.
            _log.debug("kafka_commit_after_rebalance", group=self._group_id, error=repr(exc))
            return
        except KafkaError as exc:
            if quietly:
                _log.warning("kafka_commit_failed", group=self._group_id, error=repr(exc))
                return
            raise TransportError(f"committing on {self._group_id!r} failed: {exc!r}") from exc
        for tp, position in positions.items():
            offsets = self._partitions.get(tp)
            if offsets is not None:
                offsets.committed = max(offsets.committed, position)

    async def backlog(self) -> Backlog:
        """Pending: this replica's records in flight; lag: the rest of end minus committed."""
        consumer = self._consumer
        numbers = consumer.partitions_for_topic(self._topic) or set()
        tps = [TopicPartition(self._topic, number) for number in sorted(numbers)]
        try:
            ends = await consumer.end_offsets(tps)
            behind = 0
            for tp in tps:
                mine = self._partitions.get(tp)
                committed = mine.committed if mine is not None else await consumer.committed(tp)
                behind += max(0, ends[tp] - (committed or 0))
        except KafkaError as exc:
            raise TransportError(f"reading the lag of {self._group_id!r} failed: {exc!r}") from exc
        pending = sum(offsets.in_flight for offsets in self._partitions.values())
        return Backlog(pending=pending, lag=max(0, behind - pending))

    # -- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Give up what is held (a copy with the next attempt each), commit, leave the group."""
        if self._closed:
            return
        self._closed = True
        self._state.subscriptions.discard(self)
        self._settled.set()
        try:
            async with asyncio.timeout(_CLOSE_BOUND):
                await self._give_up_held()
        except (KafkaError, TransportError, TimeoutError) as exc:
            _log.warning("kafka_close_incomplete", group=self._group_id, error=repr(exc))
        await self._stop_consumer()

    async def _give_up_held(self) -> None:
        held = list(self._held.values())
        if held:
            copies = [
                (receipt.tp.partition, receipt.key, delivery.data, receipt.attempt + 1)
                for delivery in held
                for receipt in (delivery.receipt,)
            ]
            await self._state.store_copies(self._topic, self._group, copies)
            self._finish(held)
        await self._commit(list(self._partitions), quietly=True)
        self._partitions.clear()

    async def _stop_consumer(self) -> None:
        try:
            async with asyncio.timeout(_CLOSE_BOUND):
                await self._consumer.stop()
        except (KafkaError, OSError, TimeoutError) as exc:
            _log.debug("kafka_consumer_stop_failed", group=self._group_id, error=repr(exc))


def _read_headers(record: ConsumerRecord[bytes, bytes]) -> tuple[int, str | None]:
    """The record's attempt (1 unless a copy says more) and the group a copy is for."""
    attempt, for_group = 1, None
    for name, value in record.headers or ():
        if name == ATTEMPT_HEADER:
            with contextlib.suppress(ValueError):
                attempt = max(1, int(value))
        elif name == FOR_GROUP_HEADER:
            for_group = value.decode(errors="replace")
    return attempt, for_group
