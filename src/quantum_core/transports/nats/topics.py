"""The topics of one prefix on NATS JetStream, as ``quantum-core topics`` shows them.

JetStream tells it all: the event stream counts messages per subject (a topic's length),
the dead-letter stream likewise (its dead letters), and each group's durable consumer
reports ``num_ack_pending`` (pending) and ``num_pending`` (lag). A consumer's name is a
hash; its description names the group (``Names.consumer_description``). Three requests
for the subjects, and one per 256 consumers. Read-only.
"""

from __future__ import annotations

from collections import defaultdict

import nats.js.errors
from nats.js import JetStreamContext, api

from ...bus.abilities import GroupSummary, TopicSummary
from .connection import is_not_found
from .names import Names

__all__ = ["list_topics"]


async def list_topics(js: JetStreamContext, names: Names) -> list[TopicSummary]:
    """Every topic with events, dead letters or a group under the prefix, sorted."""
    lengths = await _counts(js, names, dead=False)
    dead = await _counts(js, names, dead=True)
    groups: defaultdict[str, list[GroupSummary]] = defaultdict(list)
    for info in await _consumers(js, names.stream):
        config = info.config
        topic = names.topic_of(config.filter_subject or "")
        group = None if topic is None else names.group_of(config.description, topic)
        if topic is not None and group is not None:
            groups[topic].append(GroupSummary(group, info.num_ack_pending, info.num_pending))
    return [
        TopicSummary(
            event_type=topic,
            length=lengths.get(topic, 0),
            dead_letters=dead.get(topic, 0),
            groups=tuple(sorted(groups[topic], key=lambda group: group.name)),
        )
        for topic in sorted(set(lengths) | set(dead) | set(groups))
    ]


async def _counts(js: JetStreamContext, names: Names, *, dead: bool) -> dict[str, int]:
    """Messages per topic in the event (or dead-letter) stream; empty if it does not exist."""
    stream = names.dead_stream if dead else names.stream
    wildcard = f"{names.prefix}.{'dead' if dead else 'events'}.>"
    try:
        info = await js.stream_info(stream, subjects_filter=wildcard)
    except nats.js.errors.NotFoundError as exc:
        if is_not_found(exc, consumer=False):
            return {}
        raise
    counts: dict[str, int] = {}
    for subject, count in (info.state.subjects or {}).items():
        topic = names.topic_of(subject, dead=dead)
        if topic is not None and count:
            counts[topic] = count
    return counts


async def _consumers(js: JetStreamContext, stream: str) -> list[api.ConsumerInfo]:
    """Every consumer of the stream, page by page (JetStream lists 256 at a time)."""
    found: list[api.ConsumerInfo] = []
    while True:
        try:
            page = await js.consumers_info(stream, offset=len(found) or None)
        except nats.js.errors.NotFoundError as exc:
            if is_not_found(exc, consumer=False):
                return found
            raise
        if not page:
            return found
        found.extend(page)
