"""The transport interface: the small contract between the EventBus and a broker.

The EventBus owns semantics (dispatch, concurrency, tracing, logging, what to do with a
failure); a transport owns mechanics (durable append, consumer groups, acknowledgement,
redelivery). Keeping the interface this small is what lets memory, Redis Streams, NATS and
RabbitMQ sit behind the same bus (see httpx's ``BaseTransport`` and Watermill's
``Publisher``/``Subscriber``). What only some brokers can do (give dead letters back, keep
handled-records, tell a backlog) is not here: those are the optional abilities of
``abilities.py``, small protocols the bus looks for with ``isinstance``.

The contract every transport honours:

* ``publish(topic, messages)`` returns only once the transport holds every message; a
  message is never reported stored when it is not.
* ``subscribe(topic, group=..., consumer=...)`` makes the consumer group exist before it
  returns. A new group receives the messages published after it was created. Every group
  of a topic receives every message (fan-out); the consumers of one group share them, each
  message going to one consumer at a time (competing consumers).
* A fetched message stays pending until it is acknowledged or dead-lettered. Pending
  messages of a consumer that closed or died are delivered again to a live consumer of the
  same group, with ``delivery_count`` raised by one.
* ``dead_letter`` stores a record beside the topic and acknowledges the message in one
  step: a crash between the two neither loses nor duplicates it.

Retries, backoff and handler time limits are the bus's, not the transport's: a transport
only has to keep a message pending (and a live consumer's pending messages its own) for as
long as the bus holds it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["Backlog", "Delivery", "Subscription", "Transport"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message handed to a consumer.

    Attributes:
        data: The message exactly as published.
        receipt: The transport's own handle for acknowledging it; opaque to the bus.
        delivery_count: 1 on the first delivery, then one more for each redelivery.
    """

    data: bytes
    receipt: Any
    delivery_count: int = 1


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far one consumer group is behind; None where the transport cannot tell.

    Attributes:
        pending: Delivered to a consumer and not yet acknowledged.
        lag: Stored on the topic and not yet delivered to the group.
    """

    pending: int | None
    lag: int | None


class Subscription(ABC):
    """One consumer's view of one consumer group on one topic.

    A subscription may also have the optional abilities ``backlog()`` (pending and lag of
    its group) and ``mark_handled``/``was_handled`` (handled-records, which
    ``subscribe(..., idempotent=True)`` needs): see docs/transports.md.
    """

    @abstractmethod
    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        """Return up to ``max_count`` messages, waiting at most ``timeout`` seconds for one.

        Must be safe to cancel: a cancelled fetch loses nothing.
        """

    @abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark messages handled; they are never delivered to this group again."""

    @abstractmethod
    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Set ``record`` aside in the topic's dead-letter place and acknowledge ``delivery``."""

    @abstractmethod
    async def close(self) -> None:
        """Stop consuming; messages still pending become available to other consumers."""


class Transport(ABC):
    """A broker connection that can publish to topics and open subscriptions.

    A transport may also have the optional abilities ``read_dead_letters`` and
    ``delete_dead_letters`` (listing, replaying and purging dead letters) and
    ``restore_dead_letter`` (a replay that publishes once): see docs/transports.md.
    """

    @abstractmethod
    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Store ``messages`` on ``topic`` in order; return once all of them are stored."""

    @abstractmethod
    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Create the group if needed and return a subscription for ``consumer`` in it.

        A new group starts after the newest message, or with the oldest one the topic still
        keeps when ``from_beginning`` is true; an existing group goes on where it was.
        """

    async def ping(self) -> None:  # noqa: B027 - a transport with nothing to reach is always up
        """Check the broker answers; raise :class:`TransportError` when it does not."""

    async def close(self) -> None:  # noqa: B027 - closing is optional for a transport
        """Release what the transport opened itself (not what the caller passed in)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
