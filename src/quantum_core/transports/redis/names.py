"""Where the Redis Streams transport keeps things: one place decides every key and field.

With ``prefix`` (``quantum_core`` by default):

* ``{prefix}:stream:{event type}``: the topic's stream; each entry holds one field,
  :data:`FIELD`, whose value is the envelope.
* ``{prefix}:dead:{event type}``: the topic's dead letters, one entry each, field
  :data:`DEAD_FIELD`.
* ``{prefix}:done:{group}:{event id}``: a handled-record of an ``idempotent=True`` group.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEAD_FIELD", "FIELD", "RedisNames"]

FIELD = b"event"
"""The one field of a stream entry; its value is the envelope."""
DEAD_FIELD = b"record"
"""The one field of a dead-letter entry; its value is the dead-letter record (JSON)."""


@dataclass(frozen=True, slots=True)
class RedisNames:
    """The keys of one prefix."""

    prefix: str

    def stream(self, topic: str) -> str:
        """The stream of ``topic``'s events."""
        return f"{self.prefix}:stream:{topic}"

    def dead_letters(self, topic: str) -> str:
        """The stream of ``topic``'s dead letters."""
        return f"{self.prefix}:dead:{topic}"

    def handled(self, group: str, event_id: str) -> str:
        """The key recording that ``group`` handled ``event_id`` (``idempotent=True``)."""
        return f"{self.prefix}:done:{group}:{event_id}"
