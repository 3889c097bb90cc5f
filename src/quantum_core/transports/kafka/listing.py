"""The prefix's topics for ``quantum-core topics``: length, dead letters, groups and their lag.

A few requests for the whole listing, each bounded by ``request_timeout``: one Metadata
(the topics), one ListGroups (the consumer groups), one group-less consumer for every
partition's beginning and end (ListOffsets) that then reads each dead-letter topic (counted
by the rule of ``dead_letters.py``, so the count is what ``bus.dead_letters()`` shows) and
the last record of each events partition, and one OffsetFetch per group.

What the cluster cannot tell is None:

* a group's ``pending``: records a replica fetched and has not committed are known only
  inside that replica, so a group's ``lag`` counts every record after its commit, in
  flight or not (a partition it never committed counts from the beginning: it would start
  there, ``auto_offset_reset="earliest"``);
* a group's ``lag`` when the broker refuses its OffsetFetch; ``dead_letters`` when its
  topic could not be read to the end within ``request_timeout``; ``length`` and ``lag``
  when the metadata of the events topic carries an error.

``length`` counts every record kept, copies of given-up records (``store_copies``) too.
Tansu (0.6) reports a partition's end as the first offset of its last batch + 1; reading
the record before that end returns the whole last batch, which tells the true end (on
Kafka it returns that one record).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ...bus.abilities import GroupSummary, TopicSummary
from ...errors import TransportError
from ...logs import get_logger
from .dead_letters import fold_log
from .names import Names
from .state import KafkaState

__all__ = ["list_topics"]

_log = get_logger("quantum_core.bus.kafka")
_T = TypeVar("_T")
_Record = tuple[int, bytes | None, bytes, dict[str, bytes]]
_GROUP_REQUESTS = 8  # OffsetFetch requests in flight at once


@dataclass(slots=True)
class _Found:
    """One event type as the metadata and the group list show it."""

    events: list[TopicPartition] | None = None
    """Its events topic's partitions; None without such a topic (or its metadata failed)."""
    has_events: bool = False
    dead: TopicPartition | None = None
    has_dead: bool = False
    groups: dict[str, str] = field(default_factory=dict)
    """bus group (``service:handler``) -> Kafka group id."""


@dataclass(slots=True)
class _Offsets:
    """What the group-less consumer learnt: partition ranges and dead-letter counts."""

    begins: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]
    letters: dict[TopicPartition, int] = field(default_factory=dict)
    """Dead-letter topic partition -> live letters, for the topics read to the end."""


async def list_topics(state: KafkaState) -> list[TopicSummary]:
    """Every event type with an events or a dead-letter topic under the prefix, sorted."""
    admin = await state.admin()
    metadata = await _asked(state, "a metadata request", admin.describe_topics())
    found = _topics(state.names, metadata)
    listed = await _asked(state, "a ListGroups request", admin.list_consumer_groups())
    for group_id, *_ in listed:
        parsed = state.names.group_of(group_id)
        if parsed is not None and parsed[0] in found:
            found[parsed[0]].groups[parsed[1]] = group_id
    offsets = await _read_offsets(state, found.values())
    commits = await _commits(state, admin, found.values())
    return [
        TopicSummary(
            event_type=event_type,
            length=_length(topic, offsets),
            dead_letters=_dead_letters(topic, offsets),
            groups=tuple(
                GroupSummary(name, pending=None, lag=_lag(topic, offsets, commits.get(group_id)))
                for name, group_id in sorted(topic.groups.items())
            ),
        )
        for event_type, topic in sorted(found.items())
    ]


def _topics(names: Names, metadata: Iterable[dict[str, Any]]) -> dict[str, _Found]:
    found: dict[str, _Found] = {}
    for entry in metadata:
        name = str(entry["topic"])
        numbers = None if entry["error_code"] else [p["partition"] for p in entry["partitions"]]
        if (event_type := names.events_of(name)) is not None:
            topic = found.setdefault(event_type, _Found())
            topic.has_events = True
            if numbers is not None:
                topic.events = [TopicPartition(name, number) for number in sorted(numbers)]
        elif (event_type := names.dead_of(name)) is not None:
            topic = found.setdefault(event_type, _Found())
            topic.has_dead = True
            if numbers == [0]:
                topic.dead = TopicPartition(name, 0)
    return found


async def _read_offsets(state: KafkaState, found: Iterable[_Found]) -> _Offsets:
    """Each partition's range; then the last batch of events partitions, the dead letters."""
    topics = list(found)
    events = [tp for topic in topics for tp in topic.events or ()]
    dead = [topic.dead for topic in topics if topic.dead is not None]
    if not events and not dead:
        return _Offsets({}, {})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=state.servers,
        enable_auto_commit=False,
        client_id="quantum_core-lister",
        auto_offset_reset="earliest",
        request_timeout_ms=int(state.settings.request_timeout * 1000),
        fetch_max_wait_ms=100,  # Tansu waits the whole time on a partition with nothing new
    )
    await state.started(consumer)
    try:
        every = [*events, *dead]
        begins = await _asked(state, "a ListOffsets request", consumer.beginning_offsets(every))
        ends = await _asked(state, "a ListOffsets request", consumer.end_offsets(every))
        offsets = _Offsets(dict(begins), dict(ends))
        await _read_tails(state, consumer, offsets, events, dead)
    finally:
        await consumer.stop()
    return offsets


async def _read_tails(
    state: KafkaState,
    consumer: AIOKafkaConsumer,
    offsets: _Offsets,
    events: list[TopicPartition],
    dead: list[TopicPartition],
) -> None:
    """Correct the events partitions' ends; count each dead-letter topic read to its end.

    Whatever is not read within ``request_timeout`` keeps the end the broker reported, or
    has no count (None).
    """
    begins, ends = offsets.begins, offsets.ends
    tails = [tp for tp in events if ends[tp] > begins[tp]]
    letters = [tp for tp in dead if ends[tp] > begins[tp]]
    offsets.letters.update((tp, 0) for tp in dead if tp not in letters)
    if not tails and not letters:
        return
    consumer.assign([*tails, *letters])
    for tp in tails:
        consumer.seek(tp, ends[tp] - 1)
    for tp in letters:
        consumer.seek(tp, begins[tp])
    waiting = set(tails)
    reading = {tp: dict[int, _Record]() for tp in letters}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(state.settings.request_timeout):
            while waiting or reading:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    if tp in waiting and records:
                        ends[tp] = max(ends[tp], records[-1].offset + 1)
                        waiting.discard(tp)
                        consumer.pause(tp)
                    elif tp in reading:
                        end = ends[tp]
                        reading[tp].update(
                            (r.offset, (r.offset, r.key, b"", dict(r.headers or ())))
                            for r in records
                            if r.offset < end
                        )
                for tp in list(reading):
                    if await consumer.position(tp) >= ends[tp]:
                        log = fold_log(sorted(reading.pop(tp).values()))
                        offsets.letters[tp] = len(log.letters)
                        consumer.pause(tp)
    if waiting or reading:
        _log.debug("kafka_listing_unread", partitions=len(waiting) + len(reading))


async def _commits(
    state: KafkaState, admin: AIOKafkaAdminClient, found: Iterable[_Found]
) -> dict[str, dict[TopicPartition, int] | None]:
    """Each group's committed offsets (-1: none); None where the broker refused to say."""
    limit = asyncio.Semaphore(_GROUP_REQUESTS)

    async def committed(group_id: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        async with limit:
            # The partitions are named: Tansu drops the connection on an OffsetFetch of all.
            request = admin.list_consumer_group_offsets(group_id, partitions=tps)
            answer = await _asked(state, f"an OffsetFetch of {group_id!r}", request)
        return {tp: int(meta.offset) for tp, meta in answer.items()}

    asked = [
        (group_id, committed(group_id, topic.events))
        for topic in found
        if topic.events
        for group_id in topic.groups.values()
    ]
    answers = await asyncio.gather(*(request for _, request in asked), return_exceptions=True)
    commits: dict[str, dict[TopicPartition, int] | None] = {}
    for (group_id, _), answer in zip(asked, answers, strict=True):
        if isinstance(answer, TransportError) and isinstance(answer.__cause__, KafkaError):
            _log.debug("kafka_listing_no_offsets", group=group_id, error=repr(answer.__cause__))
            commits[group_id] = None
        elif isinstance(answer, BaseException):
            raise answer
        else:
            commits[group_id] = answer
    return commits


def _length(topic: _Found, offsets: _Offsets) -> int | None:
    if not topic.has_events:
        return 0
    if topic.events is None:
        return None
    return sum(offsets.ends[tp] - offsets.begins[tp] for tp in topic.events)


def _dead_letters(topic: _Found, offsets: _Offsets) -> int | None:
    if not topic.has_dead:
        return 0
    return None if topic.dead is None else offsets.letters.get(topic.dead)


def _lag(
    topic: _Found, offsets: _Offsets, committed: dict[TopicPartition, int] | None
) -> int | None:
    if topic.events is None or committed is None:
        return None
    lag = 0
    for tp in topic.events:
        begin = offsets.begins[tp]
        start = max(begin, committed.get(tp, -1))  # -1: never committed, read from the start
        lag += max(0, offsets.ends[tp] - start)
    return lag


async def _asked(state: KafkaState, what: str, request: Awaitable[_T]) -> _T:
    """Await one request within ``request_timeout``; a TransportError naming it otherwise."""
    bound = state.settings.request_timeout
    try:
        async with asyncio.timeout(bound):
            return await request
    except TimeoutError:
        raise TransportError(
            f"Kafka at {state.shown} did not answer {what} within {bound}s"
        ) from None
    except KafkaError as exc:
        raise TransportError(f"Kafka at {state.shown} failed {what}: {exc!r}") from exc
