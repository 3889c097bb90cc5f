"""The catalog of a prefix: the topics and groups its transports created, for ``list_topics``.

AMQP 0-9-1 cannot list queues (only the management plugin can, and it is not required), so
each transport appends a note to the stream ``{prefix}.catalog`` the first time it publishes
to a topic, subscribes a group or stores a dead letter: ``{"topic": ..., "group": ...}``
(group null for a topic alone), with the names as the bus gave them (queue names may be
escaped or shortened, so they are never parsed back). Listing reads the stream from its
first offset to a marker of its own (``streams.py``), merges the notes, and asks the broker
about each queue by a passive declare.

The stream is bounded (``CATALOG_MAX_BYTES``, dropped a segment at a time, oldest first):
each transport notes a topic or group once, and each listing adds a marker, so a topic
nothing touched since some tens of thousands of notes and listings drops out of the
listing, until it is published to, subscribed or given a dead letter again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aio_pika

from ...bus.abilities import GroupSummary, TopicSummary
from .history import stream_arguments
from .names import dead_letter_queue, group_queue

__all__ = [
    "CATALOG_MAX_BYTES",
    "catalog_arguments",
    "merge_notes",
    "note_message",
    "summarize",
]

CATALOG_MAX_BYTES = 4 * 1024 * 1024
"""Bytes the catalog stream keeps (in segments of 1 MiB): tens of thousands of notes."""

Count = Callable[[str], Awaitable[int | None]]
"""A queue's ready messages by name, None when the queue does not exist."""


def catalog_arguments() -> dict[str, Any]:
    """The x-arguments of the catalog stream: a stream of at most ``CATALOG_MAX_BYTES``."""
    return stream_arguments(CATALOG_MAX_BYTES, None)


def note_message(topic: str, group: str | None) -> aio_pika.Message:
    """The catalog's note that ``topic`` (and ``group`` of it, if given) exists."""
    body = json.dumps({"topic": topic, "group": group}, separators=(",", ":")).encode()
    return aio_pika.Message(
        body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )


def merge_notes(bodies: Iterable[bytes]) -> dict[str, set[str]]:
    """Each topic noted, with the groups noted for it; what is not a note is skipped."""
    topics: dict[str, set[str]] = {}
    for body in bodies:
        try:
            note = json.loads(body)
        except ValueError:
            continue
        if not isinstance(note, dict):
            continue
        topic, group = note.get("topic"), note.get("group")
        if not isinstance(topic, str):
            continue
        groups = topics.setdefault(topic, set())
        if isinstance(group, str):
            groups.add(group)
    return topics


async def summarize(prefix: str, noted: dict[str, set[str]], count: Count) -> list[TopicSummary]:
    """The topics noted, sorted, as the broker tells them; groups whose queue is gone left out.

    A group's lag is its queue's ready messages; pending (what its consumers hold
    unacknowledged) and a topic's length (a stream's size) AMQP does not tell: None.
    """
    topics = []
    for topic in sorted(noted):
        groups = []
        for group in sorted(noted[topic]):
            lag = await count(group_queue(prefix, topic, group))
            if lag is not None:
                groups.append(GroupSummary(name=group, pending=None, lag=lag))
        dead = await count(dead_letter_queue(prefix, topic))
        topics.append(
            TopicSummary(
                event_type=topic, length=None, dead_letters=dead or 0, groups=tuple(groups)
            )
        )
    return topics
