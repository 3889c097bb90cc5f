"""Optional abilities of a transport or a subscription: small protocols, found at run time.

Every transport must publish and subscribe, every subscription fetch, ack, dead-letter and
close (``transport.py``). The rest only some brokers can do, so it is not in the interface:
each ability is a protocol of one or two methods, and the bus (or the CLI) asks
``isinstance(transport, DeadLetterStore)`` before it uses one (Watermill's optional
interfaces, such as ``SubscribeInitializer``, work the same way). A transport has an ability
by having its methods, whatever it inherits from; a transport without it gets a clear error
naming what to implement, and only where the ability is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .transport import Backlog, Subscription, Transport

__all__ = [
    "BacklogReporter",
    "ConsumerSummary",
    "DeadLetterRestore",
    "DeadLetterStore",
    "GroupSummary",
    "HandledRecords",
    "KeyedPublisher",
    "TopicLister",
    "TopicSummary",
    "backlog_of",
    "dead_letter_store",
    "handled_records",
    "topic_lister",
]


@runtime_checkable
class DeadLetterStore(Protocol):
    """A transport that gives its dead letters back: listing, replaying and purging them."""

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Return up to ``limit`` (id, record) dead letters of ``topic``, oldest first.

        ``start`` is an id returned before: the list starts with it (or the first after it,
        if it is gone). An id this transport cannot have made raises ValueError.
        """

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete the dead letters of ``topic`` with these ids (all of them for None).

        Returns how many were deleted; ids that are gone are ignored. A delete counts only
        what it deleted itself: of two deletes of one record, one counts it (a replay's claim).
        """


@runtime_checkable
class DeadLetterRestore(Protocol):
    """A transport that can store a dead letter again: a replay then publishes it once."""

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` among the dead letters of ``topic`` again, under a new id.

        A replay deletes the dead letter first (its claim), and puts it back with this when
        the publish fails. A transport without it is replayed the old way: publish, then
        delete, so two replays of one letter can both publish.
        """


@runtime_checkable
class HandledRecords(Protocol):
    """A subscription that keeps handled-records, which ``subscribe(..., idempotent=True)`` needs.

    A record is per group (the group the subscription consumes in), keyed by the event id.
    """

    async def mark_handled(self, event_ids: Sequence[str], ttl: float) -> None:
        """Record, for ``ttl`` seconds, that this group's handler completed these events."""

    async def was_handled(self, event_id: str) -> bool:
        """Whether :meth:`mark_handled` recorded ``event_id`` for this group, unexpired."""


@runtime_checkable
class KeyedPublisher(Protocol):
    """A transport that places messages by key (Kafka: a key, a partition, one order).

    The bus uses it when a publisher passes ``ordering_key``; other transports keep one
    order per topic, so the key changes nothing there.
    """

    async def publish_keyed(
        self, topic: str, messages: Sequence[bytes], keys: Sequence[str | None] | None
    ) -> None:
        """Like ``publish``, each message with its key (None: no key)."""


@runtime_checkable
class BacklogReporter(Protocol):
    """A subscription that can tell how far its group is behind (``stats()``, ``backlog()``)."""

    async def backlog(self) -> Backlog:
        """Return the group's pending count and lag; None in either where it cannot tell."""


@dataclass(frozen=True, slots=True)
class ConsumerSummary:
    """One consumer of a group, where the broker names them (Redis).

    Attributes:
        name: The consumer's name (``{service}-{host}-{pid}``...).
        pending: Entries it was delivered and has not acknowledged.
        idle_ms: Milliseconds since it last read or acknowledged; None where unknown.
    """

    name: str
    pending: int
    idle_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One consumer group of a topic; None where the broker cannot tell.

    Attributes:
        name: The group: ``{service}:{handler}``.
        pending: Delivered to its consumers and not yet acknowledged.
        lag: Stored on the topic and not yet delivered to the group.
        consumers: Its consumers, where the broker lists them (else empty).
    """

    name: str
    pending: int | None
    lag: int | None
    consumers: tuple[ConsumerSummary, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicSummary:
    """One event type on the broker: what it stores, its dead letters and its groups.

    Attributes:
        event_type: The topic, as the bus names it (``orders.placed``).
        length: Events the broker keeps for the topic; None where it cannot tell.
        dead_letters: How many dead letters the topic has; None where it cannot tell.
        groups: Its consumer groups, sorted by name.
    """

    event_type: str
    length: int | None
    dead_letters: int | None
    groups: tuple[GroupSummary, ...] = ()


@runtime_checkable
class TopicLister(Protocol):
    """A transport that lists its topics and their groups: ``quantum-core topics``."""

    async def list_topics(self) -> Sequence[TopicSummary]:
        """Every topic of this transport's namespace (prefix), sorted by event type.

        A topic appears once something was published on it, a group subscribed to it or a
        dead letter was stored for it. Read-only, and never a topic of another prefix.
        """


_UNKNOWN = Backlog(pending=None, lag=None)


def dead_letter_store(transport: Transport, *, doing: str) -> DeadLetterStore:
    """``transport`` as a :class:`DeadLetterStore`, or NotImplementedError naming what to add.

    ``doing`` completes "<transport> does not ...", such as "give its dead letters back".
    """
    if isinstance(transport, DeadLetterStore):
        return transport
    raise NotImplementedError(
        f"{type(transport).__name__} does not {doing}; implement read_dead_letters and "
        "delete_dead_letters (see docs/transports.md)"
    )


def topic_lister(transport: Transport) -> TopicLister:
    """``transport`` as a :class:`TopicLister`, or NotImplementedError naming what to add."""
    if isinstance(transport, TopicLister):
        return transport
    raise NotImplementedError(
        f"{type(transport).__name__} does not list its topics; implement list_topics "
        "(see docs/transports.md)"
    )


def handled_records(subscription: Subscription) -> HandledRecords | None:
    """``subscription`` as :class:`HandledRecords`, or None when it keeps none."""
    return subscription if isinstance(subscription, HandledRecords) else None


async def backlog_of(subscription: Subscription) -> Backlog:
    """The subscription's backlog, or pending and lag None when it cannot tell."""
    if isinstance(subscription, BacklogReporter):
        return await subscription.backlog()
    return _UNKNOWN
