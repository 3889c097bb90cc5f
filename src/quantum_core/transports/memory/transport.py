"""The in-memory transport: the embedded default, with the group semantics of a real broker.

Use it for tests, the demo and single-process apps. It honours the whole transport contract
(fan-out per group, competing consumers, ack after the handler, redelivery of what a closed
consumer left pending), so code proven on it behaves the same on Redis. Everything lives in
this process: nothing survives a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import pydantic_core

from ...bus.registry import register_transport
from ...bus.transport import Backlog, Delivery, Subscription, Transport
from ...logs import get_logger

__all__ = ["MemoryTransport"]

_log = get_logger("quantum_core.bus.memory")


@dataclass(slots=True)
class _Entry:
    receipt: int
    data: bytes
    delivery_count: int = 0
    owner: str | None = None


class _Group:
    """One consumer group: its backlog and what its consumers hold unacknowledged."""

    def __init__(self, max_backlog: int) -> None:
        self.backlog: deque[_Entry] = deque()
        self.pending: dict[int, _Entry] = {}
        self.readable = asyncio.Event()
        self.max_backlog = max_backlog
        self.trimmed = 0
        self.handled: dict[str, float] = {}  # event id -> expiry (monotonic), oldest first

    def append(self, entry: _Entry) -> None:
        self.backlog.append(entry)
        if len(self.backlog) > self.max_backlog:
            self.backlog.popleft()
            self.trimmed += 1
            if self.trimmed == 1 or self.trimmed % 10_000 == 0:
                _log.warning(
                    "memory_backlog_trimmed", trimmed=self.trimmed, max_backlog=self.max_backlog
                )
        self.readable.set()


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
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, got {max_backlog}")
        self._max_backlog = max_backlog
        self._topics: dict[str, dict[str, _Group]] = {}
        self._history: dict[str, deque[tuple[int, bytes]]] = {}
        self._dead_letters: dict[str, dict[int, bytes]] = {}
        self._receipts = itertools.count(1)
        self._dead_letter_ids = itertools.count(1)

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
                group.append(_Entry(receipt, data))

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Return a subscription of ``consumer`` in ``group``, creating the group if new."""
        groups = self._topics.setdefault(topic, {})
        state = groups.get(group)
        if state is None:
            state = groups[group] = _Group(self._max_backlog)
            if from_beginning:
                for receipt, data in self._history.get(topic, ()):
                    state.append(_Entry(receipt, data))
        return _MemorySubscription(self, topic, state, consumer)

    def dead_letters(self, topic: str) -> list[dict[str, object]]:
        """Return the dead-letter records of ``topic`` as dicts, oldest first (for tests).

        ``await bus.dead_letters(topic)`` gives the same as typed records, on any transport.
        """
        letters = self._dead_letters.get(topic, {})
        return [pydantic_core.from_json(record) for record in letters.values()]

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Return up to ``limit`` (id, record) dead letters of ``topic`` from ``start`` on."""
        first = 0 if start is None else _dead_letter_id(start)
        letters = self._dead_letters.get(topic, {})
        found = ((str(n), record) for n, record in letters.items() if n >= first)
        return list(itertools.islice(found, limit))

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete the dead letters of ``topic`` with these ids, or all of them for None."""
        letters = self._dead_letters.get(topic, {})
        if ids is None:
            count = len(letters)
            letters.clear()
            return count
        numbers = [_dead_letter_id(letter_id) for letter_id in ids]
        return sum(letters.pop(n, None) is not None for n in numbers)

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` as a dead letter of ``topic`` again, under a new id."""
        self._set_aside(topic, record)

    def _set_aside(self, topic: str, record: bytes) -> None:
        letters = self._dead_letters.setdefault(topic, {})
        letters[next(self._dead_letter_ids)] = record
        if len(letters) > self._max_backlog:  # the oldest goes, as on a broker with a limit
            del letters[next(iter(letters))]


def _dead_letter_id(text: str) -> int:
    if isinstance(text, str) and text.isascii() and text.isdigit():
        return int(text)
    raise ValueError(f"not a dead-letter id of the memory transport: {text!r}")


class _MemorySubscription(Subscription):
    def __init__(
        self, transport: MemoryTransport, topic: str, group: _Group, consumer: str
    ) -> None:
        self._transport = transport
        self._topic = topic
        self._group = group
        self._consumer = consumer
        self._closed = False

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        group = self._group
        if not group.backlog:
            try:
                await asyncio.wait_for(group.readable.wait(), timeout)
            except TimeoutError:
                return []
        # No await from here on: a cancelled fetch takes nothing.
        deliveries: list[Delivery] = []
        while group.backlog and len(deliveries) < max_count and not self._closed:
            entry = group.backlog.popleft()
            entry.delivery_count += 1
            entry.owner = self._consumer
            group.pending[entry.receipt] = entry
            deliveries.append(Delivery(entry.data, entry.receipt, entry.delivery_count))
        if not group.backlog:
            group.readable.clear()
        return deliveries

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        pending = self._group.pending
        for delivery in deliveries:
            pending.pop(delivery.receipt, None)

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        if self._group.pending.pop(delivery.receipt, None) is not None:
            self._transport._set_aside(self._topic, record)

    async def backlog(self) -> Backlog:
        return Backlog(pending=len(self._group.pending), lag=len(self._group.backlog))

    async def mark_handled(self, event_ids: Sequence[str], ttl: float) -> None:
        handled = self._group.handled
        now = time.monotonic()
        for event_id in event_ids:
            handled.pop(event_id, None)  # re-inserted last: the dict stays in expiry order
            handled[event_id] = now + ttl
        while handled:  # forget what expired, oldest first (one TTL per group)
            oldest = next(iter(handled))
            if handled[oldest] > now:
                break
            del handled[oldest]

    async def was_handled(self, event_id: str) -> bool:
        expiry = self._group.handled.get(event_id)
        return expiry is not None and expiry > time.monotonic()

    async def close(self) -> None:
        """Give what this consumer still holds back to its group, first in line."""
        self._closed = True
        group = self._group
        mine = [e for e in group.pending.values() if e.owner == self._consumer]
        for entry in sorted(mine, key=lambda e: e.receipt, reverse=True):
            del group.pending[entry.receipt]
            entry.owner = None
            group.backlog.appendleft(entry)
        if group.backlog:
            group.readable.set()


register_transport("memory", lambda _url: MemoryTransport())
