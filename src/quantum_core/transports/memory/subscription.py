"""The memory subscription: one consumer taking from its group's backlog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ...bus.transport import Backlog, Delivery, Subscription
from .dead_letters import DeadLetterShelf
from .state import Group

__all__ = ["MemorySubscription"]


class MemorySubscription(Subscription):
    """One consumer of one group: fetch, ack, dead letters, backlog and handled-records."""

    def __init__(
        self, topic: str, group: Group, consumer: str, dead_letters: DeadLetterShelf
    ) -> None:
        self._topic = topic
        self._group = group
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._closed = False

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        """Take up to ``max_count`` from the backlog, waiting up to ``timeout`` for one."""
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
        """Forget the deliveries: they are no longer pending."""
        pending = self._group.pending
        for delivery in deliveries:
            pending.pop(delivery.receipt, None)

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Shelve ``record`` and forget the delivery, only while it is still pending here."""
        if self._group.pending.pop(delivery.receipt, None) is not None:
            self._dead_letters.set_aside(self._topic, record)

    async def backlog(self) -> Backlog:
        """Pending: what the group's consumers hold. Lag: what waits in its backlog."""
        return Backlog(pending=len(self._group.pending), lag=len(self._group.backlog))

    async def mark_handled(self, event_ids: Sequence[str], ttl: float) -> None:
        """Remember these events as handled by the group for ``ttl`` seconds."""
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
        """Whether the group handled ``event_id`` within its record's ttl."""
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
