"""Dead letters on Kafka: a topic per event type, one partition, read and deleted by offset.

A dead letter's id is its offset. Kafka cannot delete one record, so a delete appends a
*deletion*: a record whose key is the letter's id, carrying a ``qc-delete`` header with a
claim token of its own. The log is one partition, so its order decides: of two deletions of
one letter, the first in the log counts (a replay's claim), the other counts nothing.
Letters that share a key (the same event set aside twice by one group, after a crash
between storing the letter and committing) are shown once: the first.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from .state import KafkaState

__all__ = ["DeadLetterLog", "fold_log", "letter_id", "read_log"]

_DELETE_HEADER = "qc-delete"


@dataclass(slots=True)
class DeadLetterLog:
    """A dead-letter topic read whole: its live letters, and who deleted which first."""

    letters: list[tuple[int, bytes]] = field(default_factory=list)
    """(offset, record) of the live letters, oldest first."""
    first_deletion: dict[int, bytes] = field(default_factory=dict)
    """A deleted letter's offset -> the claim token of the first deletion of it."""
    shown: set[int] = field(default_factory=set)
    """Offsets of letters that are (or were) shown: not a hidden duplicate."""


async def read_log(state: KafkaState, event_type: str) -> DeadLetterLog:
    """Read the event type's dead-letter topic from its start to its end (none: no letters)."""
    topic = state.names.dead_topic(event_type)
    if not await state.has_topic(topic):  # a read never creates it: a typo stays unlisted
        return DeadLetterLog()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=state.servers,
        enable_auto_commit=False,
        client_id="quantum_core-dead-letters",
        request_timeout_ms=int(state.settings.request_timeout * 1000),
    )
    await state.started(consumer)
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        records: list[tuple[int, bytes | None, bytes, dict[str, bytes]]] = []
        async with asyncio.timeout(state.settings.request_timeout):
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, ()):
                    if record.offset < end:
                        headers = dict(record.headers or ())
                        records.append((record.offset, record.key, record.value or b"", headers))
    finally:
        await consumer.stop()
    return fold_log(records)


def fold_log(records: Iterable[tuple[int, bytes | None, bytes, dict[str, bytes]]]) -> DeadLetterLog:
    """The live letters of a dead-letter topic's records: (offset, key, value, headers), rising.

    The one rule of what a reader sees, shared by ``read_log`` and the topic listing's count.
    """
    log = DeadLetterLog()
    keys: set[bytes | None] = set()
    for offset, key, value, headers in records:
        claim = headers.get(_DELETE_HEADER)
        if claim is not None:
            target = _offset_of(key)
            if target is not None:
                log.first_deletion.setdefault(target, claim)
            continue
        if key is not None and key in keys:
            continue  # the same event set aside again: shown once
        keys.add(key)
        log.shown.add(offset)
        log.letters.append((offset, value))
    log.letters = [(o, v) for o, v in log.letters if o not in log.first_deletion]
    return log


async def delete_letters(state: KafkaState, event_type: str, offsets: Sequence[int]) -> int:
    """Append a deletion of each letter; count those whose first deletion is ours."""
    if not offsets:
        return 0
    token = os.urandom(8).hex().encode()
    topic = state.names.dead_topic(event_type)
    if not await state.has_topic(topic):
        return 0
    producer = await state.producer()
    async with state.dead_letter_writes:  # one record per batch: see write_dead_letter
        for offset in offsets:
            await producer.send_and_wait(
                topic, b"", key=str(offset).encode(), partition=0, headers=[(_DELETE_HEADER, token)]
            )
    log = await read_log(state, event_type)
    return sum(
        1
        for offset in set(offsets)
        if offset in log.shown and log.first_deletion.get(offset) == token
    )


def letter_id(text: object) -> int:
    """A dead letter's id (its offset, a decimal string) as a number."""
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19:
        return int(text)
    raise ValueError(
        f"not a dead-letter id of the Kafka transport (an offset such as '42'): {text!r}"
    )


def _offset_of(key: bytes | None) -> int | None:
    try:
        return int(key or b"")
    except ValueError:
        return None
