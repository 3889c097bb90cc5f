"""The in-memory transport: the embedded default, with the group semantics of a real broker.

Use it for tests, the demo and single-process apps. It honours the whole transport contract
(fan-out per group, competing consumers, ack after the handler, redelivery of what a closed
consumer left pending), so code proven on it behaves the same on Redis. Everything lives in
this process: nothing survives a restart.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

import pydantic_core

from ..._checks import check_int
from ...bus.abilities import GroupSummary, TopicSummary
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from .dead_letters import DeadLetterShelf
from .state import Entry, Group
from .subscription import MemorySubscription

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    """Topics and consumer groups in this process's memory.

    Several buses in one process talk to each other when they share one instance; the URL
    ``memory://`` gives every bus a private one.

    Args:
        max_backlog: How many messages a topic keeps (for groups that start from the
            beginning) and how many unread ones a group keeps; beyond it the oldest are
            dropped (with a warning for a group), as a broker's retention limit would.
    """

    def __init__(self, *, max_backlog: int = 1_000_000) -> None:
        self._max_backlog = check_int("max_backlog", max_backlog)
        self._topics: dict[str, dict[str, Group]] = {}
        self._history: dict[str, deque[tuple[int, bytes]]] = {}
        self._dead_letters = DeadLetterShelf(max_backlog)
        self._receipts = itertools.count(1)

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Append each message to every group of ``topic``."""
        history = self._history.get(topic)
        if history is None:
            history = self._history[topic] = deque(maxlen=self._max_backlog)
        groups = self._topics.get(topic, {})
        for data in messages:
            receipt = next(self._receipts)
            history.append((receipt, data))
            for group in groups.values():
                group.append(Entry(receipt, data))

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Return a subscription of ``consumer`` in ``group``, creating the group if new."""
        groups = self._topics.setdefault(topic, {})
        state = groups.get(group)
        if state is None:
            state = groups[group] = Group(self._max_backlog)
            if from_beginning:
                for receipt, data in self._history.get(topic, ()):
                    state.append(Entry(receipt, data))
        return MemorySubscription(topic, state, consumer, self._dead_letters)

    def dead_letters(self, topic: str) -> list[dict[str, object]]:
        """Return the dead-letter records of ``topic`` as dicts, oldest first (for tests).

        ``await bus.dead_letters(topic)`` gives the same as typed records, on any transport.
        """
        return [pydantic_core.from_json(record) for record in self._dead_letters.records(topic)]

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Return up to ``limit`` (id, record) dead letters of ``topic`` from ``start`` on."""
        return self._dead_letters.read(topic, limit, start)

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete the dead letters of ``topic`` with these ids, or all of them for None."""
        return self._dead_letters.delete(topic, ids)

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` as a dead letter of ``topic`` again, under a new id."""
        self._dead_letters.set_aside(topic, record)

    async def list_topics(self) -> Sequence[TopicSummary]:
        """Every topic published to, subscribed to or with dead letters, sorted."""
        names = set(self._history) | set(self._topics) | self._dead_letters.topics()
        return [
            TopicSummary(
                event_type=topic,
                length=len(self._history.get(topic, ())),
                dead_letters=self._dead_letters.count(topic),
                groups=tuple(
                    GroupSummary(name, pending=len(group.pending), lag=len(group.backlog))
                    for name, group in sorted(self._topics.get(topic, {}).items())
                ),
            )
            for topic in sorted(names)
        ]


register_transport("memory", lambda _url: MemoryTransport())
