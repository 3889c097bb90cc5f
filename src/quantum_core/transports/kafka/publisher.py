"""Publishing on Kafka: a batch per partition, each awaited for ``acks=all``.

One record goes through ``send`` (aiokafka's own partitioner: murmur2 of the key, like the
Java client, or any partition without a key). Several go as one ``BatchBuilder`` per
partition (``send_batch``): a keyed record on the partition the same murmur2 picks, records
without a key in runs spread over the partitions, so a large batch is shared by the
replicas. A publish returns once every batch is acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

__all__ = ["BatchPublisher"]


class BatchPublisher:
    """Sends the messages of one publish call, a batch per partition."""

    def __init__(self) -> None:
        self._turn = itertools.count()  # where the next run of keyless records starts

    async def send(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        messages: Sequence[bytes],
        keys: Sequence[bytes | None] | None,
    ) -> None:
        """Send every message and wait until the cluster acknowledged each batch."""
        if len(messages) == 1:
            await (await producer.send(topic, messages[0], key=keys[0] if keys else None))
            return
        partitions = sorted(await producer.partitions_for(topic))
        count = len(partitions)
        run = -(-len(messages) // count)  # records per partition for keyless ones
        first = next(self._turn)
        placed: dict[int, list[tuple[bytes | None, bytes]]] = {}
        for index, message in enumerate(messages):
            key = keys[index] if keys else None
            if key is None:
                partition = partitions[(first + index // run) % count]
            else:
                partition = partitions[(murmur2(key) & 0x7FFFFFFF) % count]
            placed.setdefault(partition, []).append((key, message))
        sent = []
        for partition, records in placed.items():
            batch = producer.create_batch()
            for key, message in records:
                if batch.append(key=key, value=message, timestamp=None) is None:  # full
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=message, timestamp=None)
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
