"""Dead letters of the memory transport: a bounded shelf per topic, ids counted from 1."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["DeadLetterShelf"]


class DeadLetterShelf:
    """The dead letters of every topic of one transport, oldest first, ``max_kept`` per topic.

    Shared by the transport (which reads, deletes and restores them) and its subscriptions
    (which set them aside).
    """

    def __init__(self, max_kept: int) -> None:
        self._max_kept = max_kept
        self._letters: dict[str, dict[int, bytes]] = {}
        self._ids = itertools.count(1)

    def set_aside(self, topic: str, record: bytes) -> None:
        """Store ``record`` under a new id; beyond ``max_kept`` the oldest goes."""
        letters = self._letters.setdefault(topic, {})
        letters[next(self._ids)] = record
        if len(letters) > self._max_kept:  # the oldest goes, as on a broker with a limit
            del letters[next(iter(letters))]

    def records(self, topic: str) -> list[bytes]:
        """Every record of ``topic``, oldest first."""
        return list(self._letters.get(topic, {}).values())

    def topics(self) -> set[str]:
        """The topics that have dead letters."""
        return {topic for topic, letters in self._letters.items() if letters}

    def count(self, topic: str) -> int:
        """How many dead letters ``topic`` has."""
        return len(self._letters.get(topic, ()))

    def read(self, topic: str, limit: int, start: str | None) -> list[tuple[str, bytes]]:
        """Up to ``limit`` (id, record) of ``topic`` from the id ``start`` on."""
        first = 0 if start is None else _letter_id(start)
        letters = self._letters.get(topic, {})
        found = ((str(n), record) for n, record in letters.items() if n >= first)
        return list(itertools.islice(found, limit))

    def delete(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete these ids of ``topic`` (all of them for None); return how many went."""
        letters = self._letters.get(topic, {})
        if ids is None:
            count = len(letters)
            letters.clear()
            return count
        numbers = [_letter_id(letter_id) for letter_id in ids]
        return sum(letters.pop(n, None) is not None for n in numbers)


def _letter_id(text: str) -> int:
    if isinstance(text, str) and text.isascii() and text.isdigit():
        return int(text)
    raise ValueError(f"not a dead-letter id of the memory transport: {text!r}")
