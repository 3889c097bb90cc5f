"""What the memory transport and its subscriptions share: the consumer groups of a topic.

The transport appends every published message to each group of its topic; a subscription
takes from its group's backlog and keeps what it took pending until it settles it. Nothing
else passes between them (dead letters go to ``dead_letters.py``'s shelf).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from ...logs import get_logger

__all__ = ["Entry", "Group"]

_log = get_logger("quantum_core.bus.memory")


@dataclass(slots=True)
class Entry:
    """One message of one group: its receipt, how often it was delivered, who holds it."""

    receipt: int
    data: bytes
    delivery_count: int = 0
    owner: str | None = None


class Group:
    """One consumer group: its backlog and what its consumers hold unacknowledged."""

    def __init__(self, max_backlog: int) -> None:
        self.backlog: deque[Entry] = deque()
        self.pending: dict[int, Entry] = {}
        self.readable = asyncio.Event()
        self.max_backlog = max_backlog
        self.trimmed = 0
        self.handled: dict[str, float] = {}  # event id -> expiry (monotonic), oldest first

    def append(self, entry: Entry) -> None:
        """Add a message to the backlog, dropping the oldest beyond ``max_backlog``."""
        self.backlog.append(entry)
        if len(self.backlog) > self.max_backlog:
            self.backlog.popleft()
            self.trimmed += 1
            if self.trimmed == 1 or self.trimmed % 10_000 == 0:
                _log.warning(
                    "memory_backlog_trimmed", trimmed=self.trimmed, max_backlog=self.max_backlog
                )
        self.readable.set()
