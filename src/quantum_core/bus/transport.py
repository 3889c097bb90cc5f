"""The transport interface: the small contract between the EventBus and a broker.

The EventBus owns semantics (dispatch, concurrency, tracing, logging, what to do with a
failure); a transport owns mechanics (durable append, consumer groups, acknowledgement,
redelivery). Keeping the interface this small is what lets memory, Redis Streams, NATS and
RabbitMQ sit behind the same bus (see httpx's ``BaseTransport`` and Watermill's
``Publisher``/``Subscriber``).

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
* ``read_dead_letters`` and ``delete_dead_letters`` give the records back, oldest first,
  each under an id of the transport's choosing (a string), and delete them; a delete
  reports only what it deleted itself, so of two deletes of one record one counts it.
  ``restore_dead_letter`` stores a record again (under a new id): a replay that claimed a
  dead letter by deleting it puts it back when its publish fails.
* Optionally, ``mark_handled`` and ``was_handled`` keep a record per (group, event id)
  for a while, which ``subscribe(..., idempotent=True)`` relies on.

Retries, backoff and handler time limits are the bus's, not the transport's: a transport
only has to keep a message pending (and a live consumer's pending messages its own) for as
long as the bus holds it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = [
    "Backlog",
    "Delivery",
    "Subscription",
    "Transport",
    "register_transport",
    "resolve_transport",
    "transport_from_url",
]


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
    """One consumer's view of one consumer group on one topic."""

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

    async def backlog(self) -> Backlog:
        """Return the group's pending count and lag, where the transport can tell."""
        return Backlog(pending=None, lag=None)

    @property
    def records_handled(self) -> bool:
        """Whether this subscription keeps handled-records (for ``idempotent=True``)."""
        return type(self).mark_handled is not Subscription.mark_handled

    async def mark_handled(self, event_ids: Sequence[str], ttl: float) -> None:
        """Record, for ``ttl`` seconds, that this group's handler completed these events.

        Optional: only subscriptions with ``idempotent=True`` use it. A record is per group
        (the group this subscription consumes in), keyed by the event id.
        """
        raise NotImplementedError(
            f"{type(self).__name__} keeps no handled-records; implement mark_handled and "
            "was_handled to support subscribe(..., idempotent=True)"
        )

    async def was_handled(self, event_id: str) -> bool:
        """Whether :meth:`mark_handled` recorded ``event_id`` for this group, unexpired."""
        raise NotImplementedError(
            f"{type(self).__name__} keeps no handled-records; implement mark_handled and "
            "was_handled to support subscribe(..., idempotent=True)"
        )


class Transport(ABC):
    """A broker connection that can publish to topics and open subscriptions."""

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

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Return up to ``limit`` (id, record) dead letters of ``topic``, oldest first.

        ``start`` is an id returned before: the list starts with it (or the first after it,
        if it is gone). An id this transport cannot have made raises ValueError.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not give its dead letters back; implement "
            "read_dead_letters and delete_dead_letters (see docs/transports.md)"
        )

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete the dead letters of ``topic`` with these ids (all of them for None).

        Returns how many were deleted; ids that are gone are ignored.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not delete its dead letters; implement "
            "read_dead_letters and delete_dead_letters (see docs/transports.md)"
        )

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` among the dead letters of ``topic`` again, under a new id.

        A replay deletes the dead letter first (its claim), and puts it back with this when
        the publish fails. A transport without it is replayed the old way: publish, then
        delete, so two replays of one letter can both publish.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot store a dead letter again; implement "
            "restore_dead_letter (see docs/transports.md)"
        )

    async def ping(self) -> None:  # noqa: B027 - a transport with nothing to reach is always up
        """Check the broker answers; raise :class:`TransportError` when it does not."""

    async def close(self) -> None:  # noqa: B027 - closing is optional for a transport
        """Release what the transport opened itself (not what the caller passed in)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


TransportFactory = Callable[[str], Transport]
_registry: dict[str, TransportFactory] = {}
# Built-in transports register themselves when their module is imported, on first use, so
# `import quantum_core` loads no broker library.
_BUILTIN_MODULES = {
    "memory": "quantum_core.bus.memory",
    "redis": "quantum_core.bus.redis_streams",
    "rediss": "quantum_core.bus.redis_streams",
    "nats": "quantum_core.bus.nats_jetstream",
    "amqp": "quantum_core.bus.rabbitmq",
    "amqps": "quantum_core.bus.rabbitmq",
}


def register_transport(scheme: str, factory: TransportFactory) -> None:
    """Let :func:`transport_from_url` build a transport for ``scheme://...`` URLs."""
    _registry[scheme.lower()] = factory


def transport_from_url(url: str) -> Transport:
    """Build the transport a URL names, such as ``memory://``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _registry and scheme in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[scheme])
    factory = _registry.get(scheme)
    if factory is None:
        known = ", ".join(f"{name}://" for name in sorted({*_registry, *_BUILTIN_MODULES}))
        what = f"URL scheme {scheme}://" if scheme else "a URL without a scheme"
        raise ValueError(f"no transport for {what}; known schemes: {known}")
    return factory(url)


def resolve_transport(transport: object) -> tuple[Transport, bool]:
    """Return the transport an EventBus was given and whether the bus must close it.

    A :class:`Transport` is the caller's; a URL or a ``redis.asyncio.Redis`` client (the
    guide's ``EventBus(redis_client)``) becomes a transport the bus owns.
    """
    if isinstance(transport, Transport):
        return transport, False
    if isinstance(transport, str):
        return transport_from_url(transport), True
    if type(transport).__module__.startswith("redis."):
        from .redis_streams import RedisStreamsTransport  # imported only when used

        return RedisStreamsTransport(transport), True  # type: ignore[arg-type]
    raise TypeError(
        "EventBus transport must be a Transport, a redis.asyncio.Redis client, or a URL such "
        f"as 'memory://' or 'redis://localhost:6379', got {type(transport).__name__}"
    )
