"""What one partition has handed out and not committed: the offset that is safe to commit.

Handlers finish out of order under ``concurrency > 1``; a Kafka commit says "everything
before this offset is done", so the commit may only move up to the lowest offset still in
flight. :class:`PartitionOffsets` keeps the offsets in fetch order (they rise) and the set
of finished ones; the commit point moves past a prefix of finished offsets only.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """One partition of one assignment: fetched offsets, finished ones, the commit point.

    A new object is made for each assignment of the partition, so a delivery of an earlier
    assignment (its receipt holds the object) is told apart from the current ones.
    """

    __slots__ = ("_done", "_in_order", "committed", "position")

    def __init__(self, position: int) -> None:
        self.position = position
        """The offset to commit: every offset below it is finished (or was before us)."""
        self.committed = position
        """The last position committed to Kafka."""
        self._in_order: deque[int] = deque()
        self._done: set[int] = set()

    def fetched(self, offset: int) -> None:
        """A record was handed out (offsets arrive rising)."""
        self._in_order.append(offset)

    def finished(self, offset: int) -> None:
        """A record was handled (or set aside, or skipped); move the position past a prefix."""
        if offset < self.position:  # finished already (an ack sent twice)
            return
        self._done.add(offset)
        in_order, done = self._in_order, self._done
        while in_order and in_order[0] in done:
            first = in_order.popleft()
            done.discard(first)
            self.position = first + 1

    @property
    def in_flight(self) -> int:
        """Records handed out and not finished."""
        return len(self._in_order) - len(self._done)

    def unfinished(self) -> list[int]:
        """The offsets handed out and not finished, rising."""
        return [offset for offset in self._in_order if offset not in self._done]

    def to_commit(self) -> int | None:
        """The position, if it moved since the last commit."""
        return self.position if self.position != self.committed else None
