"""The RabbitMQ transport: a topic exchange, a quorum queue per consumer group.

Layout on the broker: see ``names.py``. In short, events go to the topic
exchange ``{prefix}`` under their event type; every consumer group (``{service}:{handler}``)
has a durable quorum queue bound to that routing key, which its replicas share; a stream per
topic keeps its history for groups that start ``from_beginning``; dead letters go to a
durable queue per topic.

Delivery: publisher confirms (``publish`` returns once the broker confirmed every message,
a batch published concurrently), a consumer per subscription with a prefetch window that
follows what the bus holds (``subscription.py``), manual acks after the handler.
When a consumer's channel or connection closes, RabbitMQ requeues what it left
unacknowledged, and the quorum queue counts the return in ``x-delivery-count``.

The connections are aio-pika robust connections (one to publish, one to consume, so flow
control on publishers never holds back acks): after a broker restart they reconnect, and
each subscription consumes again from its durable queue. Queues and consumers of groups
are not robust: the subscription restores them itself (``subscription.py``).

Not here: handled-records for ``idempotent=True`` (RabbitMQ keeps no keys; use Redis), and
a group-wide pending count (AMQP 0-9-1 tells a queue's ready messages, not what other
consumers hold unacknowledged: ``backlog()`` reports this consumer's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    import aio_pika
    import aiormq
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "the RabbitMQ transport (amqp:// URLs) needs aio-pika: pip install 'quantum-core[rabbitmq]'"
    ) from exc
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
)

from ..._redaction import redact_text
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from ...errors import TransportError
from .channels import open_channel
from .dead_letters import (
    browse_dead_letters,
    check_id,
    dead_letter_message,
    delete_by_id,
)
from .history import copy_history, stream_arguments
from .names import (
    check_prefix,
    check_topic,
    dead_letter_queue,
    group_queue,
    history_stream,
)
from .subscription import AMQP_ERRORS, RabbitMQSubscription
from .url import redact_url, split_options

__all__ = ["RabbitMQTransport"]

_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*AMQP_ERRORS, ValueError)
_PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
_CHANNEL_GONE: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    aiormq.exceptions.ConnectionClosed,  # the broker closed the connection (or it dropped)
)
_RECONNECT_INTERVAL = 1.0
"""aio-pika's pause before reconnecting (5 s by default), unless the URL sets its own."""
_HEARTBEAT = 5
"""Seconds between AMQP heartbeats, unless the URL sets its own (aiormq's default is 60).

A connection that heard nothing for ``(heartbeat + 1) x 3`` seconds is given up by aiormq
(it looks every ``heartbeat / 2``), and aio-pika makes a new one: a network path that froze
silently (no RST) is left within 20 s instead of three minutes. The broker gives up its end
after two missed heartbeats (10 s) and requeues what the consumer held."""
_DEFAULTS: dict[str, Any] = {
    "prefix": "quantum_core",
    "history_max_bytes": 256 * 1024 * 1024,
    "history_max_age": None,
    "dead_letter_max": 100_000,
    "consumer_timeout": None,
    "publish_timeout": 5.0,
}


class RabbitMQTransport(Transport):
    """Topics on a RabbitMQ topic exchange, shared by every process on the same prefix.

    Args:
        connection: An ``amqp://`` / ``amqps://`` URL, or an aio-pika connection (which
            the transport uses but never closes). Options in the URL's query (``prefix``,
            ``history_max_bytes``...) apply where no keyword argument is given.
        prefix: Name of the exchange and start of every queue name.
        history_max_bytes: Bytes of history each topic's stream keeps (for groups that
            start ``from_beginning``); 0 keeps none, and ``from_beginning`` is refused.
        history_max_age: Instead of (or beside) the size, drop history older than this
            many seconds.
        dead_letter_max: Dead letters each topic keeps; beyond it the oldest go.
        consumer_timeout: Seconds a consumer may hold a message unacknowledged before the
            broker closes its channel (``x-consumer-timeout``, RabbitMQ 3.12+; older
            brokers use their ``consumer_timeout`` setting, 30 minutes by default).
        publish_timeout: Seconds ``publish`` waits for the broker's confirms; also the bound
            of every other request to the broker (``stats()``, a consumer's start and
            cancel, a dead letter's store...), so a connection that went silent never holds
            a caller for longer. The URL's ``heartbeat`` (5 s unless given) decides how soon
            such a connection is given up and a new one made.
    """

    def __init__(
        self,
        connection: AbstractConnection | str,
        *,
        prefix: str | None = None,
        history_max_bytes: int | None = None,
        history_max_age: float | None = None,
        dead_letter_max: int | None = None,
        consumer_timeout: float | None = None,
        publish_timeout: float | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "prefix": prefix,
            "history_max_bytes": history_max_bytes,
            "history_max_age": history_max_age,
            "dead_letter_max": dead_letter_max,
            "consumer_timeout": consumer_timeout,
            "publish_timeout": publish_timeout,
        }
        from_url: dict[str, Any] = {}
        if isinstance(connection, str):
            self._url: str | None
            self._url, from_url = split_options(connection)
            self._shown = redact_url(connection)
            self._given: AbstractConnection | None = None
        elif isinstance(connection, aio_pika.abc.AbstractConnection):
            self._url = None
            self._shown = redact_url(str(getattr(connection, "url", "amqp://(connection)")))
            self._given = connection
        else:
            raise TypeError(
                "RabbitMQTransport needs an amqp:// URL or an aio-pika connection, got "
                f"{type(connection).__name__}"
            )
        options = {
            name: given[name] if given[name] is not None else from_url.get(name, default)
            for name, default in _DEFAULTS.items()
        }
        self.prefix = check_prefix(options["prefix"])
        self._history_max_bytes = _at_least("history_max_bytes", options["history_max_bytes"], 0)
        self._history_max_age = options["history_max_age"]
        if self._history_max_age is not None and not self._history_max_age > 0:
            raise ValueError(
                "history_max_age must be a positive number of seconds, got "
                f"{self._history_max_age!r}"
            )
        self._dead_letter_max = _at_least("dead_letter_max", options["dead_letter_max"], 1)
        timeout = options["consumer_timeout"]
        if timeout is not None and not timeout > 0:
            raise ValueError(
                f"consumer_timeout must be a positive number of seconds, got {timeout!r}"
            )
        self._consumer_timeout_ms = None if timeout is None else int(timeout * 1000)
        self.publish_timeout = options["publish_timeout"]
        if (
            not isinstance(self.publish_timeout, int | float)
            or not 0 < self.publish_timeout < math.inf
        ):
            raise ValueError(
                "publish_timeout must be a positive number of seconds, got "
                f"{self.publish_timeout!r}"
            )
        self._connections: dict[str, AbstractConnection] = {}
        self._connecting = asyncio.Lock()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._admin: AbstractChannel | None = None
        self._histories: set[str] = set()
        self._subscriptions: set[RabbitMQSubscription] = set()
        self._declared: set[str] = set()  # queue names, for tests that clean up after them
        self._ids = itertools.count(1)
        self._id_base = os.urandom(6).hex()
        self._closed = False

    def __repr__(self) -> str:
        return f"RabbitMQTransport({self._shown!r}, prefix={self.prefix!r})"

    @property
    def keeps_history(self) -> bool:
        """Whether topics keep a history stream, so groups can start ``from_beginning``."""
        return self._history_max_bytes > 0

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Publish every message, concurrently, and return once the broker confirmed all.

        RabbitMQ closes a channel on any channel error (and 3.10 crashes one that publishes
        to a stream declared an instant before, at times closing the whole connection); what
        the closed channel left unconfirmed goes again, once, on a new channel (with the same
        message ids), after waiting up to ``RECONNECT_WAIT`` for a lost connection.
        """
        check_topic(topic)
        base = self._id_base
        ids = self._ids
        outgoing = [(data, f"{base}-{next(ids)}") for data in messages]
        try:
            left = await self._publish(topic, outgoing)
            if left:
                left = await self._publish(topic, left)
        except TimeoutError:
            raise self._error(
                f"could not publish to {topic!r}",
                TransportError(
                    f"RabbitMQ did not confirm {len(outgoing)} message(s) within "
                    f"{self.publish_timeout:g} s"
                ),
            ) from None
        except AMQP_ERRORS as exc:
            raise self._error(f"could not publish to {topic!r}", exc) from exc
        if left:
            raise self._error(
                f"could not publish to {topic!r}",
                TransportError("the channel (or its connection) closed twice"),
            )

    async def _publish(
        self, topic: str, outgoing: list[tuple[bytes, str]]
    ) -> list[tuple[bytes, str]]:
        """Publish on the current channel; return what its closing left unconfirmed.

        Raises ``TimeoutError`` when the broker did not confirm within ``publish_timeout``.
        """
        _, exchange = await self._publisher()
        async with asyncio.timeout(self.publish_timeout):
            if self.keeps_history and topic not in self._histories:
                await self._declare_history(topic)
            if len(outgoing) == 1:
                try:
                    await exchange.publish(_message(*outgoing[0]), topic, mandatory=False)
                except _CHANNEL_GONE:
                    return outgoing
                return []
            results = await asyncio.gather(
                *(exchange.publish(_message(*item), topic, mandatory=False) for item in outgoing),
                return_exceptions=True,
            )
        left = []
        for item, result in zip(outgoing, results, strict=True):
            if isinstance(result, _CHANNEL_GONE):
                left.append(item)
            elif isinstance(result, BaseException):
                raise result
        return left

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Declare the group's quorum queue and bind it; fill it from history if asked."""
        check_topic(topic)
        if from_beginning and not self.keeps_history:
            raise ValueError(
                f"subscribe({topic!r}, from_beginning=True) needs the topic's history, and this "
                "RabbitMQTransport keeps none (history_max_bytes=0): a RabbitMQ queue only "
                "holds what was routed to it after it was bound"
            )
        name = group_queue(self.prefix, topic, group)
        try:
            connection = await self._connection("consume")
            fill = from_beginning and not await self._queue_exists(name)
            channel = await open_channel(connection, confirms=False)
            try:
                queue = await self._declare_group(channel, topic, name, fill=fill)
                subscription = RabbitMQSubscription(self, topic, group, channel, queue)
            except BaseException:
                with contextlib.suppress(*AMQP_ERRORS):
                    await channel.close()
                raise
        except AMQP_ERRORS as exc:
            raise self._error(f"could not subscribe {group!r} to {topic!r}", exc) from exc
        self._subscriptions.add(subscription)
        return subscription

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Browse the topic's dead-letter queue (see ``dead_letters.py``)."""
        first = None if start is None else check_id(start)
        name = dead_letter_queue(self.prefix, check_topic(topic))
        try:
            if limit <= 0 or not await self._queue_exists(name):
                return []
            return await browse_dead_letters(await self._connection("consume"), name, limit, first)
        except AMQP_ERRORS as exc:
            raise self._error(f"reading dead letters of {topic!r} failed", exc) from exc

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` in the topic's dead-letter queue again, under a new id."""
        await self._store_dead_letter(check_topic(topic), record, None)

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete these dead letters (acknowledge them), or purge the queue for None."""
        wanted = None if ids is None else [check_id(letter_id) for letter_id in ids]
        name = dead_letter_queue(self.prefix, check_topic(topic))
        try:
            if wanted == [] or not await self._queue_exists(name):
                return 0
            connection = await self._connection("consume")
            if wanted is not None:
                return await delete_by_id(connection, name, wanted)
            channel = await open_channel(connection, confirms=False)
            try:
                queue = await channel.get_queue(name, ensure=False)
                result = await queue.purge()
                return int(result.message_count or 0)
            finally:
                await channel.close()
        except AMQP_ERRORS as exc:
            raise self._error(f"deleting dead letters of {topic!r} failed", exc) from exc

    async def ping(self) -> None:
        """Declare the exchange again: a round trip that proves the broker answers."""
        try:
            async with asyncio.timeout(self.publish_timeout):
                channel, _ = await self._publisher()
                await channel.declare_exchange(
                    self.prefix, aio_pika.ExchangeType.TOPIC, durable=True
                )
        except AMQP_ERRORS as exc:
            raise self._error("RabbitMQ did not answer", exc) from exc

    async def close(self) -> None:
        """Close the subscriptions, then the connections this transport opened.

        Each step runs for all at once and is bounded on a connection that went silent: a
        subscription's goodbye by ``publish_timeout``, a connection's close by aiormq's wait
        for the broker's answer (2 s). A connection takes its channels with it; those of a
        connection we were given are closed one by one.
        """
        self._closed = True
        await asyncio.gather(*(subscription.close() for subscription in list(self._subscriptions)))
        channels = [channel for channel in (self._channel, self._admin) if channel is not None]
        self._channel = self._exchange = self._admin = None
        connections = list(self._connections.values())
        self._connections.clear()
        if self._given is None:
            await asyncio.gather(*(_quietly(connection.close()) for connection in connections))
        else:
            await asyncio.gather(
                *(_quietly(channel.close(), self.publish_timeout) for channel in channels)
            )

    # -- for the subscriptions ---------------------------------------------------------

    def _forget(self, subscription: RabbitMQSubscription) -> None:
        self._subscriptions.discard(subscription)

    async def _store_dead_letter(self, topic: str, record: bytes, origin: str | None) -> None:
        """Publish the record to the dead-letter queue and wait for the broker's confirm."""
        name = dead_letter_queue(self.prefix, topic)
        try:
            channel, _ = await self._publisher()
            async with asyncio.timeout(self.publish_timeout):
                await channel.declare_queue(
                    name,
                    durable=True,
                    arguments={"x-max-length": self._dead_letter_max, "x-overflow": "drop-head"},
                )
                self._declared.add(name)
                result = await channel.default_exchange.publish(
                    dead_letter_message(record, origin), name, mandatory=True
                )
        except AMQP_ERRORS as exc:
            raise self._error(f"could not store a dead letter of {topic!r}", exc) from exc
        if not isinstance(result, aiormq.spec.Basic.Ack):  # returned: the queue is gone
            raise TransportError(f"the dead-letter queue {name!r} did not take the record")

    async def _declare_group(
        self, channel: AbstractChannel, topic: str, name: str, *, fill: bool = True
    ) -> AbstractQueue:
        """Declare and bind the group's quorum queue; copy the history into it if ``fill``."""
        exchange = await channel.declare_exchange(
            self.prefix, aio_pika.ExchangeType.TOPIC, durable=True
        )
        # Not robust: aio-pika would declare a deleted queue again, empty, behind our back
        # (the subscription refills it from the history) and restore its consumer.
        queue: AbstractQueue
        if isinstance(channel, AbstractRobustChannel):
            queue = await channel.declare_queue(name, durable=True, arguments=_QUORUM, robust=False)
        else:
            queue = await channel.declare_queue(name, durable=True, arguments=_QUORUM)
        self._declared.add(name)
        await queue.bind(exchange, routing_key=topic)
        if fill and self.keeps_history:
            if topic not in self._histories:
                await self._declare_history(topic)
            connection = await self._connection("consume")
            await copy_history(connection, history_stream(self.prefix, topic), name)
        return queue

    async def _ready_count(self, queue: str) -> int | None:
        """The queue's ready messages, from a passive declare (None if it is gone).

        The declare goes to aiormq's channel: aio-pika's robust channel answers a passive
        declare of a queue it saw before from its cache, with the count of that first time.
        """
        try:
            async with asyncio.timeout(self.publish_timeout):
                channel = self._admin
                if channel is None or channel.is_closed:
                    connection = await self._connection("consume")
                    channel = self._admin = await open_channel(connection, confirms=False)
                underlay = await channel.get_underlay_channel()
                declared = await underlay.queue_declare(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        except AMQP_ERRORS as exc:
            raise self._error(f"could not read the backlog of {queue!r}", exc) from exc
        return int(declared.message_count or 0) if declared is not None else None

    # -- connections -------------------------------------------------------------------

    async def _connection(self, role: str) -> AbstractConnection:
        """The connection for ``role`` ("publish" or "consume"), opened on first use."""
        if self._given is not None:
            return self._given
        connection = self._connections.get(role)
        if connection is not None:
            return connection
        if self._closed:
            raise TransportError(f"{self!r} is closed")
        async with self._connecting:
            connection = self._connections.get(role)
            if connection is None:
                url = self._url or ""
                query = parse_qs(urlsplit(url).query)
                interval = None if "reconnect_interval" in query else _RECONNECT_INTERVAL
                heartbeat = None if "heartbeat" in query else _HEARTBEAT
                try:
                    connection = await aio_pika.connect_robust(
                        url,
                        client_properties={"connection_name": self._connection_name(role)},
                        reconnect_interval=interval,  # None: the URL's
                        heartbeat=heartbeat,
                    )
                except _CONNECT_ERRORS as exc:
                    raise self._error("could not connect", exc) from exc
                self._connections[role] = connection
            return connection

    def _connection_name(self, role: str) -> str:
        """How the broker lists the connection (management UI, ``rabbitmqctl``)."""
        return f"quantum_core {role} {self.prefix}"

    async def _publisher(self) -> tuple[AbstractChannel, AbstractExchange]:
        """The publishing channel (with confirms) and the exchange, declared on first use.

        A channel the broker closed is replaced here: aio-pika's robust channel does not
        always come back from a channel-level close (seen with aio-pika 10.2).
        """
        channel, exchange = self._channel, self._exchange
        if channel is not None and exchange is not None and not channel.is_closed:
            return channel, exchange
        connection = await self._connection("publish")
        async with self._connecting:
            if self._channel is not None and self._channel.is_closed:
                closed, self._channel, self._exchange = self._channel, None, None
                with contextlib.suppress(*AMQP_ERRORS):
                    await closed.close()
            if self._channel is None or self._exchange is None:
                channel = await open_channel(connection, confirms=True)
                async with asyncio.timeout(self.publish_timeout):
                    self._exchange = await channel.declare_exchange(
                        self.prefix, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                self._channel = channel
            return self._channel, self._exchange

    async def _declare_history(self, topic: str) -> None:
        """Declare the topic's history stream and bind it (once per topic and transport)."""
        channel, exchange = await self._publisher()
        name = history_stream(self.prefix, topic)
        stream = await channel.declare_queue(
            name,
            durable=True,
            arguments=stream_arguments(self._history_max_bytes, self._history_max_age),
        )
        self._declared.add(name)
        await stream.bind(exchange, routing_key=topic)
        self._histories.add(topic)

    async def _queue_exists(self, name: str) -> bool:
        connection = await self._connection("consume")
        channel = await open_channel(connection, confirms=False)
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            with contextlib.suppress(*AMQP_ERRORS):
                await channel.close()
        return True

    def _error(self, what: str, exc: BaseException) -> TransportError:
        if isinstance(exc, TimeoutError) and not str(exc):
            reason = f"no answer within {self.publish_timeout:g} s (is the broker reachable?)"
        else:
            reason = redact_text(str(exc) or type(exc).__name__)
        if self._url is not None:
            reason = reason.replace(self._url, self._shown)
        return TransportError(f"{what} (RabbitMQ at {self._shown}): {reason}")


async def _quietly(step: Awaitable[object], timeout: float | None = None) -> None:
    """Await a step of closing: what is gone already, or does not answer, is no error here."""
    with contextlib.suppress(*AMQP_ERRORS):
        async with asyncio.timeout(timeout):
            await step


def _message(data: bytes, message_id: str) -> aio_pika.Message:
    return aio_pika.Message(data, delivery_mode=_PERSISTENT, message_id=message_id)


def _at_least(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def transport_from_amqp_url(url: str) -> RabbitMQTransport:
    """Build a transport from an ``amqp://`` or ``amqps://`` URL (options in its query)."""
    return RabbitMQTransport(url)


register_transport("amqp", transport_from_amqp_url)
register_transport("amqps", transport_from_amqp_url)
