"""What the RabbitMQ transport and its subscriptions share: connections, channels, queues.

The transport makes one :class:`RabbitMQState` and hands it to every subscription; both open
connections and channels, declare queues and store dead letters through it, so a subscription
whose queue was deleted declares it again here, never in the transport.

The connections are aio-pika robust connections (one to publish, one to consume, so flow
control on publishers never holds back acks): after a broker restart they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
)

from ..._redaction import redact_text
from ...bus.abilities import TopicSummary
from ...errors import TransportError
from .catalog import (
    CatalogReading,
    catalog_arguments,
    note_message,
    snapshot_message,
    summarize,
)
from .channels import open_bare_channel, open_channel
from .dead_letters import dead_letter_message
from .history import copy_history, stream_arguments
from .names import catalog_stream, dead_letter_queue, history_stream
from .streams import read_stream

if TYPE_CHECKING:
    from .subscription import RabbitMQSubscription

__all__ = ["AMQP_ERRORS", "CHANNEL_GONE", "RabbitMQSettings", "RabbitMQState"]

AMQP_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPException,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,  # a RuntimeError: the channel is closed
    ConnectionError,
    OSError,
    TimeoutError,
)
"""What a request to the broker may raise when it, or the way to it, fails."""
CHANNEL_GONE: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    aiormq.exceptions.ConnectionClosed,  # the broker closed the connection (or it dropped)
)
"""What a request on a channel raises when the channel (or its connection) closed under it."""
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*AMQP_ERRORS, ValueError)
_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
_STALLED = 1.0
"""Seconds without a record after which a catalog read starts again (``read_stream``)."""
_RECONNECT_INTERVAL = 1.0
"""aio-pika's pause before reconnecting (5 s by default), unless the URL sets its own."""
_HEARTBEAT = 5
"""Seconds between AMQP heartbeats, unless the URL sets its own (aiormq's default is 60).

A connection that heard nothing for ``(heartbeat + 1) x 3`` seconds is given up by aiormq
(it looks every ``heartbeat / 2``), and aio-pika makes a new one: a network path that froze
silently (no RST) is left within 20 s instead of three minutes. The broker gives up its end
after two missed heartbeats (10 s) and requeues what the consumer held."""


@dataclass(frozen=True, slots=True)
class RabbitMQSettings:
    """The transport's options, checked (see ``RabbitMQTransport`` for each)."""

    prefix: str
    history_max_bytes: int
    history_max_age: float | None
    dead_letter_max: int
    consumer_timeout_ms: int | None
    publish_timeout: float

    @property
    def keeps_history(self) -> bool:
        """Whether topics keep a history stream, so groups can start ``from_beginning``."""
        return self.history_max_bytes > 0


class RabbitMQState:
    """The connections, channels and declarations of one transport, shared with its subscriptions.

    Attributes:
        settings: The transport's options.
        url: The URL for aio-pika (without our options); None for a connection given.
        shown: The URL with its password hidden, for reprs, logs and errors.
        given: The aio-pika connection the transport was given (never closed), if any.
        declared: Every queue and stream name declared (tests delete them afterwards).
        subscriptions: The open subscriptions, closed with the transport.
        closed: The transport was closed: nothing connects again.
    """

    def __init__(
        self,
        settings: RabbitMQSettings,
        *,
        url: str | None,
        shown: str,
        given: AbstractConnection | None,
    ) -> None:
        self.settings = settings
        self.url = url
        self.shown = shown
        self.given = given
        self.declared: set[str] = set()
        self.subscriptions: set[RabbitMQSubscription] = set()
        self.closed = False
        self._connections: dict[str, AbstractConnection] = {}
        self._connecting = asyncio.Lock()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._admin: aiormq.abc.AbstractChannel | None = None
        self._histories: set[str] = set()
        self._topics: set[str] = set()
        self._noted: set[tuple[str, str | None, bool]] = set()
        self._catalog_declared = False

    def __repr__(self) -> str:
        return f"RabbitMQTransport({self.shown!r}, prefix={self.settings.prefix!r})"

    async def close(self) -> None:
        """Close the subscriptions, then the connections this transport opened.

        Each step runs for all at once and is bounded on a connection that went silent: a
        subscription's goodbye by ``publish_timeout``, a connection's close by aiormq's wait
        for the broker's answer (2 s). A connection takes its channels with it; those of a
        connection we were given are closed one by one.
        """
        self.closed = True
        await asyncio.gather(*(subscription.close() for subscription in list(self.subscriptions)))
        channel, admin = self._channel, self._admin
        self._channel = self._exchange = self._admin = None
        connections = list(self._connections.values())
        self._connections.clear()
        if self.given is None:
            await asyncio.gather(*(quietly(connection.close()) for connection in connections))
        else:
            timeout = self.settings.publish_timeout
            await asyncio.gather(
                *([quietly(channel.close(), timeout)] if channel is not None else []),
                *([quietly(admin.close(), timeout)] if admin is not None else []),
            )

    async def store_dead_letter(self, topic: str, record: bytes, origin: str | None) -> None:
        """Publish the record to the dead-letter queue and wait for the broker's confirm."""
        name = dead_letter_queue(self.settings.prefix, topic)
        try:
            await self.publisher()  # connects, bounded on its own
            async with asyncio.timeout(self.settings.publish_timeout):
                await self.note(topic, dead=True)
                channel, _ = await self.publisher()  # the note may have replaced a closed one
                await channel.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-max-length": self.settings.dead_letter_max,
                        "x-overflow": "drop-head",
                    },
                )
                self.declared.add(name)
                result = await channel.default_exchange.publish(
                    dead_letter_message(record, origin), name, mandatory=True
                )
        except AMQP_ERRORS as exc:
            raise self.error(f"could not store a dead letter of {topic!r}", exc) from exc
        if not isinstance(result, aiormq.spec.Basic.Ack):  # returned: the queue is gone
            raise TransportError(f"the dead-letter queue {name!r} did not take the record")

    async def declare_group(
        self, channel: AbstractChannel, topic: str, group: str, name: str, *, fill: bool = True
    ) -> AbstractQueue:
        """Declare, bind and note ``group``'s quorum queue ``name``; fill it if ``fill``.

        Noted in the catalog (``catalog.py``) once per transport; filled with a copy of the
        topic's history.
        """
        exchange = await channel.declare_exchange(
            self.settings.prefix, aio_pika.ExchangeType.TOPIC, durable=True
        )
        # Not robust: aio-pika would declare a deleted queue again, empty, behind our back
        # (the subscription refills it from the history) and restore its consumer.
        queue: AbstractQueue
        if isinstance(channel, AbstractRobustChannel):
            queue = await channel.declare_queue(name, durable=True, arguments=_QUORUM, robust=False)
        else:
            queue = await channel.declare_queue(name, durable=True, arguments=_QUORUM)
        self.declared.add(name)
        await queue.bind(exchange, routing_key=topic)
        await self.note(topic, group)
        if fill and self.settings.keeps_history:
            if topic not in self._histories:
                await self.declare_history(topic)
            connection = await self.connection("consume")
            await copy_history(connection, history_stream(self.settings.prefix, topic), name)
        return queue

    async def ready_count(self, queue: str) -> int | None:
        """The queue's ready messages, from a passive declare (None if it is gone).

        The declare goes to a bare aiormq channel (``open_bare_channel``): aio-pika's robust
        channel answers a passive declare of a queue it saw before from its cache, with the
        count of that first time, and reopens itself after a missing queue closed it. The
        broker closes the channel for a missing queue: the next call opens another.
        """
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                channel = self._admin
                if channel is None or channel.is_closed:
                    connection = await self.connection("consume")
                    channel = self._admin = await open_bare_channel(connection)
                declared = await channel.queue_declare(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        except AMQP_ERRORS as exc:
            raise self.error(f"could not read the backlog of {queue!r}", exc) from exc
        return int(declared.message_count or 0) if declared is not None else None

    async def connection(self, role: str) -> AbstractConnection:
        """The connection for ``role`` ("publish" or "consume"), opened on first use."""
        if self.given is not None:
            return self.given
        connection = self._connections.get(role)
        if connection is not None:
            return connection
        if self.closed:
            raise TransportError(f"{self!r} is closed")
        async with self._connecting:
            connection = self._connections.get(role)
            if connection is None:
                url = self.url or ""
                query = parse_qs(urlsplit(url).query)
                interval = None if "reconnect_interval" in query else _RECONNECT_INTERVAL
                heartbeat = None if "heartbeat" in query else _HEARTBEAT
                try:
                    connection = await aio_pika.connect_robust(
                        url,
                        client_properties={"connection_name": self.connection_name(role)},
                        reconnect_interval=interval,  # None: the URL's
                        heartbeat=heartbeat,
                    )
                except _CONNECT_ERRORS as exc:
                    raise self.error("could not connect", exc) from exc
                self._connections[role] = connection
            return connection

    def connection_name(self, role: str) -> str:
        """How the broker lists the connection (management UI, ``rabbitmqctl``)."""
        return f"quantum_core {role} {self.settings.prefix}"

    async def publisher(self) -> tuple[AbstractChannel, AbstractExchange]:
        """The publishing channel (with confirms) and the exchange, declared on first use.

        A channel the broker closed is replaced here: aio-pika's robust channel does not
        always come back from a channel-level close (seen with aio-pika 10.2).
        """
        channel, exchange = self._channel, self._exchange
        if channel is not None and exchange is not None and not channel.is_closed:
            return channel, exchange
        connection = await self.connection("publish")
        async with self._connecting:
            if self._channel is not None and self._channel.is_closed:
                closed, self._channel, self._exchange = self._channel, None, None
                with contextlib.suppress(*AMQP_ERRORS):
                    await closed.close()
            if self._channel is None or self._exchange is None:
                channel = await open_channel(connection, confirms=True)
                async with asyncio.timeout(self.settings.publish_timeout):
                    self._exchange = await channel.declare_exchange(
                        self.settings.prefix, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                self._channel = channel
            return self._channel, self._exchange

    async def declare_history(self, topic: str) -> None:
        """Declare the topic's history stream and bind it (once per topic and transport)."""
        channel, exchange = await self.publisher()
        name = history_stream(self.settings.prefix, topic)
        stream = await channel.declare_queue(
            name,
            durable=True,
            arguments=stream_arguments(
                self.settings.history_max_bytes, self.settings.history_max_age
            ),
        )
        self.declared.add(name)
        await stream.bind(exchange, routing_key=topic)
        self._histories.add(topic)

    async def ensure_topic(self, topic: str) -> None:
        """Note the topic in the catalog and declare its history stream, once per transport.

        The history stream only where the transport keeps history; publishing calls this.
        """
        if topic in self._topics:
            return
        await self.note(topic)
        if self.settings.keeps_history and topic not in self._histories:
            await self.declare_history(topic)
        self._topics.add(topic)

    async def note(self, topic: str, group: str | None = None, *, dead: bool = False) -> None:
        """Append to the catalog that ``topic`` (and ``group`` on it) exists, once per transport.

        ``dead``: the topic has a dead-letter queue. Waits for the broker's confirm
        (``catalog.py``); tries once more on a new channel if the channel closed, and
        declares a catalog deleted meanwhile again.
        """
        if (topic, group, dead) in self._noted:
            return
        name = catalog_stream(self.settings.prefix)
        for attempt in range(2):  # again after the channel closed, or the catalog was deleted
            channel, _ = await self.publisher()  # a closed one is replaced here
            try:
                if not self._catalog_declared:
                    await channel.declare_queue(name, durable=True, arguments=catalog_arguments())
                    self.declared.add(name)
                    self._catalog_declared = True
                result = await channel.default_exchange.publish(
                    note_message(topic, group, dead=dead), name, mandatory=True
                )
            except CHANNEL_GONE:  # 3.10 may crash the first publish to a stream just declared
                if attempt:
                    raise
                continue
            if isinstance(result, aiormq.spec.Basic.Ack):
                self._noted.add((topic, group, dead))
                return
            self._catalog_declared = False
        raise TransportError(f"the catalog stream {name!r} did not take a note of {topic!r}")

    async def list_topics(self) -> list[TopicSummary]:
        """Every topic the catalog noted, as the broker tells it (``catalog.py``).

        Empty if there is no catalog. Appends a snapshot when one is due. Unbounded: the
        transport bounds it.
        """
        name = catalog_stream(self.settings.prefix)
        if await self.ready_count(name) is None:
            return []
        reading = CatalogReading()
        connection = await self.connection("consume")
        channel = await open_channel(connection, confirms=True)
        try:
            end = await read_stream(channel, name, reading.take, restart_after=_STALLED)
            topics = await summarize(self.settings.prefix, reading, self.ready_count)
            if reading.snapshot_due(end):
                message = snapshot_message(topics, reading.dead)
                await channel.default_exchange.publish(message, name)
        finally:
            with contextlib.suppress(*AMQP_ERRORS):
                await channel.close()
        return topics

    async def queue_exists(self, name: str) -> bool:
        """Whether the queue ``name`` exists (a passive declare on a channel of its own)."""
        connection = await self.connection("consume")
        channel = await open_channel(connection, confirms=False)
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            with contextlib.suppress(*AMQP_ERRORS):
                await channel.close()
        return True

    def error(self, what: str, exc: BaseException) -> TransportError:
        """A ``TransportError`` saying ``what`` failed and why, without the URL's password."""
        if isinstance(exc, TimeoutError) and not str(exc):
            reason = (
                f"no answer within {self.settings.publish_timeout:g} s (is the broker reachable?)"
            )
        else:
            reason = redact_text(str(exc) or type(exc).__name__)
        if self.url is not None:
            reason = reason.replace(self.url, self.shown)
        return TransportError(f"{what} (RabbitMQ at {self.shown}): {reason}")


async def quietly(step: Awaitable[object], timeout: float | None = None) -> None:
    """Await a step of closing: what is gone already, or does not answer, is no error here."""
    with contextlib.suppress(*AMQP_ERRORS):
        async with asyncio.timeout(timeout):
            await step
