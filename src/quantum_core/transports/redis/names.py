"""Where the Redis Streams transport keeps things: one place decides every key and field.

With ``prefix`` (``quantum_core`` by default), on one Redis:

* ``{prefix}:stream:{event type}``: the topic's stream; each entry holds one field,
  :data:`FIELD`, whose value is the envelope.
* ``{prefix}:dead:{event type}``: the topic's dead letters, one entry each, field
  :data:`DEAD_FIELD`.
* ``{prefix}:done:{group}:{event id}``: a handled-record of an ``idempotent=True`` group.

On a Redis Cluster (:class:`ClusterNames`) every key of one topic starts with the hash tag
``{prefix:event type}``, so they share a slot (the dead-letter script touches two of them)
while different topics spread over the masters: ``{prefix:event type}:stream``,
``{prefix:event type}:dead``, ``{prefix:event type}:done:{group}:{event id}``. The
single-node names stay as they were: a deployment's existing streams keep their keys.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEAD_FIELD", "FIELD", "ClusterNames", "RedisNames"]

FIELD = b"event"
"""The one field of a stream entry; its value is the envelope."""
DEAD_FIELD = b"record"
"""The one field of a dead-letter entry; its value is the dead-letter record (JSON)."""


@dataclass(frozen=True, slots=True)
class RedisNames:
    """The keys of one prefix on one Redis."""

    prefix: str

    def stream(self, topic: str) -> str:
        """The stream of ``topic``'s events."""
        return f"{self.prefix}:stream:{topic}"

    def dead_letters(self, topic: str) -> str:
        """The stream of ``topic``'s dead letters."""
        return f"{self.prefix}:dead:{topic}"

    def handled(self, topic: str, group: str, event_id: str) -> str:
        """The key recording that ``group`` handled ``event_id`` (``idempotent=True``)."""
        return f"{self.prefix}:done:{group}:{event_id}"

    def stream_pattern(self) -> str:
        """A SCAN pattern matching every stream key (glob characters of the prefix escaped)."""
        return _glob_escape(f"{self.prefix}:stream:") + "*"

    def topic_of(self, stream_key: str) -> str:
        """The topic of a stream key."""
        return stream_key.removeprefix(f"{self.prefix}:stream:")


@dataclass(frozen=True, slots=True)
class ClusterNames(RedisNames):
    """The keys of one prefix on a Redis Cluster: a topic's keys share one hash slot."""

    def stream(self, topic: str) -> str:
        """The stream of ``topic``'s events."""
        return f"{{{self.prefix}:{topic}}}:stream"

    def dead_letters(self, topic: str) -> str:
        """The stream of ``topic``'s dead letters."""
        return f"{{{self.prefix}:{topic}}}:dead"

    def handled(self, topic: str, group: str, event_id: str) -> str:
        """The key recording that ``group`` handled ``event_id`` (``idempotent=True``)."""
        return f"{{{self.prefix}:{topic}}}:done:{group}:{event_id}"

    def stream_pattern(self) -> str:
        """A SCAN pattern matching every stream key (glob characters of the prefix escaped)."""
        return _glob_escape(f"{{{self.prefix}:") + "*}:stream"

    def topic_of(self, stream_key: str) -> str:
        """The topic of a stream key."""
        return stream_key.removeprefix(f"{{{self.prefix}:").removesuffix("}:stream")


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
