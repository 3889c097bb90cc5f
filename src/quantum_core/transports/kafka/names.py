"""Names on the Kafka cluster: one place derives them, so transport, subscriptions and tests agree.

With ``prefix`` (letters, digits, ``_`` or ``-``): topic ``{prefix}.events.{event type}``
per event type, topic ``{prefix}.dead.{event type}`` for its dead letters, and consumer
group ``{prefix}:{group}:{event type}`` per subscribing group (a group is
``{service}:{handler}``; the event type is in it because one handler name may subscribe to
several event types, and a Kafka group is best kept to one subscription).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ATTEMPT_HEADER", "FOR_GROUP_HEADER", "PREFIX_PATTERN", "Names"]

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A prefix starts every topic name: letters, digits, '_' and '-' (all legal in Kafka)."""

ATTEMPT_HEADER = "qc-attempt"
"""The delivery attempt a copy of a given-up record starts at (absent: 1)."""
FOR_GROUP_HEADER = "qc-for-group"
"""The one group a copy of a given-up record is for; every other group skips it."""

_TOPIC_MAX = 249  # Kafka's limit on a topic name


@dataclass(frozen=True, slots=True)
class Names:
    """Topic and group names of one prefix."""

    prefix: str

    def topic(self, event_type: str) -> str:
        """The topic an event type's events are published on."""
        return self._checked(f"{self.prefix}.events.{event_type}")

    def dead_topic(self, event_type: str) -> str:
        """The topic an event type's dead letters are kept on (one partition)."""
        return self._checked(f"{self.prefix}.dead.{event_type}")

    def group_id(self, event_type: str, group: str) -> str:
        """The Kafka consumer group of ``group`` on ``event_type``."""
        return f"{self.prefix}:{group}:{event_type}"

    def events_of(self, topic: str) -> str | None:
        """The event type whose events ``topic`` holds; None for any other topic."""
        return _after(topic, f"{self.prefix}.events.")

    def dead_of(self, topic: str) -> str | None:
        """The event type whose dead letters ``topic`` holds; None for any other topic."""
        return _after(topic, f"{self.prefix}.dead.")

    def group_of(self, group_id: str) -> tuple[str, str] | None:
        """(event type, group) of one of our Kafka consumer groups; None for any other.

        The event type is after the last ':' (a topic name cannot hold one); the group,
        ``{service}:{handler}``, is what lies between it and the prefix.
        """
        rest = _after(group_id, f"{self.prefix}:")
        group, colon, event_type = (rest or "").rpartition(":")
        if not (group and colon and event_type):
            return None
        return event_type, group

    @staticmethod
    def _checked(topic: str) -> str:
        if len(topic) > _TOPIC_MAX or not re.fullmatch(r"[A-Za-z0-9._-]+", topic):
            raise ValueError(
                f"the Kafka topic {topic!r} is not valid: at most {_TOPIC_MAX} letters, digits, "
                "'.', '_' or '-' (shorten the prefix or the event type)"
            )
        return topic


def _after(name: str, start: str) -> str | None:
    """What follows ``start`` in ``name`` (non-empty), or None.

    A prefix holds no '.' or ':', so ``a_b.events.x`` is never a topic of the prefix ``a``.
    """
    if name.startswith(start) and len(name) > len(start):
        return name[len(start) :]
    return None
