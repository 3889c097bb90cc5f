"""The catalog of a prefix: the topics and groups its transports created, for ``list_topics``.

AMQP 0-9-1 cannot list queues (only the management plugin can, and it is not required), so
each transport appends a note to the stream ``{prefix}.catalog`` the first time it publishes
to a topic, subscribes a group or stores a dead letter: ``{"topic": ..., "group": ...}``
(group null for a topic alone; ``"dead": true`` for a dead letter's), with the names as the
bus gave them (queue names may be escaped or shortened, so they are never parsed back).
Listing reads the stream from its first offset to a marker of its own (``streams.py``),
merges what it read, and asks the broker about each queue by a passive declare.

The stream is bounded (``CATALOG_MAX_BYTES``, dropped a segment at a time, oldest first),
which also bounds how long a listing reads it, and every listing adds a marker, so notes
alone would fall out of it: a listing that read more than ``SNAPSHOT_AFTER`` records since
the last snapshot appends one, ``{"snapshot": {topic: [group, ...]}, "dead": [topic, ...]}``,
of everything it listed (groups whose queue was deleted left out). What is listed now and
then therefore stays in the catalog; a topic drops out only when some thousands of records
came after its last note with no listing between them, and comes back when it is published
to, subscribed or given a dead letter again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from ...bus.abilities import GroupSummary, TopicSummary
from .names import dead_letter_queue, group_queue
from .streams import OFFSET

__all__ = [
    "CATALOG_MAX_BYTES",
    "SNAPSHOT_AFTER",
    "CatalogReading",
    "catalog_arguments",
    "note_message",
    "snapshot_message",
    "summarize",
]

CATALOG_MAX_BYTES = 2 * 1024 * 1024
"""Bytes the catalog stream keeps: some 6,000 records (RabbitMQ stores each in 300 bytes)."""
_SEGMENT_BYTES = 256 * 1024
"""Retention drops a segment at a time: an eighth of the catalog."""
SNAPSHOT_AFTER = 500
"""Records (notes, markers) after the last snapshot beyond which a listing appends one."""

Count = Callable[[str], Awaitable[int | None]]
"""A queue's ready messages by name, None when the queue does not exist."""


def catalog_arguments() -> dict[str, Any]:
    """The x-arguments of the catalog stream: a stream of at most ``CATALOG_MAX_BYTES``."""
    return {
        "x-queue-type": "stream",
        "x-max-length-bytes": CATALOG_MAX_BYTES,
        "x-stream-max-segment-size-bytes": _SEGMENT_BYTES,
    }


def note_message(topic: str, group: str | None, *, dead: bool = False) -> aio_pika.Message:
    """The catalog's note that ``topic`` (and ``group`` of it, if given) exists.

    ``dead``: the topic has a dead-letter queue (only those are asked for their count).
    """
    record: dict[str, Any] = {"topic": topic, "group": group}
    if dead:
        record["dead"] = True
    return _message(record)


def snapshot_message(topics: Sequence[TopicSummary], dead: set[str]) -> aio_pika.Message:
    """A record of every topic listed, its groups and those with dead letters (of ``dead``).

    So that older notes may go.
    """
    listed = {t.event_type: [g.name for g in t.groups] for t in topics}
    return _message({"snapshot": listed, "dead": sorted(dead.intersection(listed))})


def _message(record: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(json.dumps(record, separators=(",", ":")).encode())


class CatalogReading:
    """What a read of the catalog found: each topic with its groups, and where it snapshotted.

    Attributes:
        noted: Each topic noted, with the groups noted for it.
        dead: The topics noted with a dead-letter queue.
    """

    def __init__(self) -> None:
        self.noted: dict[str, set[str]] = {}
        self.dead: set[str] = set()
        self._first: int | None = None
        self._snapshot: int | None = None

    async def take(self, batch: list[AbstractIncomingMessage]) -> None:
        """Merge a batch of records read (``streams.read_stream``); skip what is not one."""
        for message in batch:
            offset = (message.headers or {}).get(OFFSET)
            offset = offset if isinstance(offset, int) else None
            if self._first is None:
                self._first = offset
            try:
                record = json.loads(message.body)
            except ValueError:
                continue
            if isinstance(record, dict) and self._merge(record):
                self._snapshot = offset

    def snapshot_due(self, end: int | None) -> bool:
        """Whether more than ``SNAPSHOT_AFTER`` records came after the last snapshot."""
        since = self._snapshot if self._snapshot is not None else self._first
        return end is not None and since is not None and end - since > SNAPSHOT_AFTER

    def _merge(self, record: dict[str, Any]) -> bool:
        """Merge a note or a snapshot; True for a snapshot."""
        snapshot, dead = record.get("snapshot"), record.get("dead")
        if isinstance(snapshot, dict):
            for topic, groups in snapshot.items():
                if isinstance(topic, str) and isinstance(groups, list):
                    self._add(topic, groups)
            if isinstance(dead, list):
                self.dead.update(topic for topic in dead if isinstance(topic, str))
            return True
        topic, group = record.get("topic"), record.get("group")
        if isinstance(topic, str):
            self._add(topic, [group])
            if dead is True:
                self.dead.add(topic)
        return False

    def _add(self, topic: str, groups: list[object]) -> None:
        known = self.noted.setdefault(topic, set())
        known.update(group for group in groups if isinstance(group, str))


async def summarize(prefix: str, reading: CatalogReading, count: Count) -> list[TopicSummary]:
    """The topics noted, sorted, as the broker tells them; groups whose queue is gone left out.

    A group's lag is its queue's ready messages; pending (what its consumers hold
    unacknowledged) and a topic's length (a stream's size) AMQP does not tell: None. Only
    a topic noted with dead letters is asked for them: asking about a queue that does not
    exist costs a channel (the broker closes it).
    """
    topics = []
    for topic in sorted(reading.noted):
        groups = []
        for group in sorted(reading.noted[topic]):
            lag = await count(group_queue(prefix, topic, group))
            if lag is not None:
                groups.append(GroupSummary(name=group, pending=None, lag=lag))
        dead = None
        if topic in reading.dead:
            dead = await count(dead_letter_queue(prefix, topic))
        topics.append(
            TopicSummary(
                event_type=topic, length=None, dead_letters=dead or 0, groups=tuple(groups)
            )
        )
    return topics
