"""The topics of one prefix on Redis: streams, their dead letters, groups and consumers.

What ``quantum-core topics`` shows: SCAN finds the streams (on a cluster, on every master),
then two pipelined round trips read every stream's length, groups and dead letters, and
every group's consumers, however many streams there are. Read-only. Redis tells everything:
pending (delivered, not acknowledged) and lag (not yet delivered) per group, the consumers
holding the pending entries and how long each has been silent. Only a Redis before 7.0
cannot tell the lag (None).
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from ...bus.abilities import ConsumerSummary, GroupSummary, TopicSummary
from ...errors import TransportError
from .names import RedisNames

__all__ = ["list_topics"]


async def list_topics(client: Any, names: RedisNames) -> list[TopicSummary]:
    """Every stream under the prefix, sorted by event type, with groups and consumers."""
    try:
        keys = sorted(
            {
                _text(key)
                async for key in client.scan_iter(
                    match=names.stream_pattern(), count=1000, _type="stream"
                )
            }
        )
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xlen(key)
                pipe.xinfo_groups(key)
                pipe.xlen(names.dead_letters(names.topic_of(key)))
            replies = await pipe.execute(raise_on_error=False)
        found: list[tuple[str, int, int, list[dict[str, Any]]]] = []
        for index, key in enumerate(keys):
            length, groups, dead = replies[3 * index : 3 * index + 3]
            if isinstance(length, Exception) or isinstance(groups, Exception):
                continue  # deleted between SCAN and now
            dead_count = 0 if isinstance(dead, Exception) else int(dead)
            found.append((key, int(length), dead_count, list(groups)))
        consumers = await _consumers(
            client, [(key, g) for key, *_, groups in found for g in groups]
        )
    except RedisError as exc:
        raise TransportError(f"listing the streams under {names.prefix!r} failed: {exc}") from exc
    return [
        TopicSummary(
            event_type=names.topic_of(key),
            length=length,
            dead_letters=dead,
            groups=tuple(
                sorted(
                    (
                        _group(info, consumers.get((key, _text(info.get("name"))), ()))
                        for info in groups
                    ),
                    key=lambda group: group.name,
                )
            ),
        )
        for key, length, dead, groups in found
    ]


def _group(info: dict[str, Any], consumers: tuple[ConsumerSummary, ...]) -> GroupSummary:
    lag = info.get("lag")
    return GroupSummary(
        name=_text(info.get("name")),
        pending=int(info.get("pending") or 0),
        lag=None if lag is None else int(lag),  # None: Redis cannot tell (before 7.0)
        consumers=consumers,
    )


async def _consumers(
    client: Any, groups: list[tuple[str, dict[str, Any]]]
) -> dict[tuple[str, str], tuple[ConsumerSummary, ...]]:
    """Each (stream, group)'s consumers, in one pipelined round trip."""
    if not groups:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for key, info in groups:
            pipe.xinfo_consumers(key, _text(info.get("name")))
        replies = await pipe.execute(raise_on_error=False)
    found: dict[tuple[str, str], tuple[ConsumerSummary, ...]] = {}
    for (key, info), consumers in zip(groups, replies, strict=True):
        if isinstance(consumers, Exception):
            continue  # the group went between the two round trips
        found[key, _text(info.get("name"))] = tuple(
            ConsumerSummary(
                name=_text(consumer.get("name")),
                pending=int(consumer.get("pending") or 0),
                idle_ms=int(consumer.get("idle") or 0),
            )
            for consumer in consumers
        )
    return found


def _text(value: Any) -> str:
    """A key or a name as redis-py returned it; bytes that are not UTF-8 still print."""
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)
