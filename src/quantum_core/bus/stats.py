"""What one subscription has done since its bus started, and where it stands now."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "SubscriptionStats"]


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """Counters of one running subscription, plus its backlog on the broker.

    Counters are this process's, since ``start()``; ``pending`` and ``lag`` are the whole
    consumer group's (every replica), None where the transport cannot tell.

    Attributes:
        event_type: The subscribed event type.
        name: The subscription name (the consumer group is ``service:name``).
        handled: Events whose handler returned (and that were then acknowledged).
        failed: Attempts that raised or timed out.
        retried: Failed attempts that were followed by another attempt.
        dead_lettered: Events set aside: out of attempts, or not a readable envelope.
        retrying: Events waiting now for their next attempt.
        pending: Delivered to a consumer of the group and not yet acknowledged.
        lag: Stored on the topic and not yet delivered to the group.
        skipped_duplicates: Redeliveries acknowledged without running the handler, because
            the group's handler had already completed them (``idempotent=True`` only).
    """

    event_type: str
    name: str
    handled: int
    failed: int
    retried: int
    dead_lettered: int
    retrying: int
    pending: int | None
    lag: int | None
    skipped_duplicates: int = 0


@dataclass(slots=True)
class Counters:
    """The mutable counters a consumer keeps; read through :class:`SubscriptionStats`."""

    handled: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    retrying: int = 0
    skipped_duplicates: int = 0
