"""What the NATS JetStream transport and its subscriptions share: the connection and streams.

The transport makes one :class:`NatsState` and hands it to every subscription; both connect,
create streams and consumers, store dead letters and handled-records through it, so a
subscription that finds its consumer deleted recreates it here, never in the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from ...errors import TransportError
from ...logs import get_logger
from .connection import STREAM_CONFIG_DIFFERS, Liveness, connect, is_not_found
from .handled import HandledBucket
from .names import Names
from .publisher import AckedPublisher

if TYPE_CHECKING:
    from .subscription import NatsSubscription

__all__ = ["NatsState", "StreamSettings"]

_log = get_logger("quantum_core.bus.nats")
_DEAD_LETTER_DEDUP_WINDOW = 3600.0
"""Seconds JetStream remembers a dead letter's ``Nats-Msg-Id`` (see the subscription)."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How the transport creates what it creates: streams, consumers, the bucket."""

    ack_wait: float
    max_ack_pending: int
    maxlen: int | None
    max_age: float | None
    dead_letter_maxlen: int
    storage: api.StorageType
    replicas: int


class NatsState:
    """The connection, JetStream context and publisher of one transport, made on first use.

    Attributes:
        names: Stream, subject, consumer and bucket names of the prefix.
        settings: How streams, consumers and the bucket are created.
        publish_timeout: Seconds a publish (or any other JetStream request) may take.
        liveness: How soon a connection the transport opened is given up when silent.
        client: The connection, once made (or the one the transport was given).
        closed: The transport was closed: nothing connects again.
        subscriptions: The open subscriptions, closed with the transport.
    """

    def __init__(
        self,
        names: Names,
        settings: StreamSettings,
        *,
        servers: list[str] | None,
        client: Client | None,
        publish_timeout: float,
        liveness: Liveness,
    ) -> None:
        self.names = names
        self.settings = settings
        self.publish_timeout = publish_timeout
        self.liveness = liveness
        self.servers = servers
        self.client = client
        self.owns_client = servers is not None
        self.closed = False
        self.subscriptions: set[NatsSubscription] = set()
        self._js: JetStreamContext | None = None
        self._publisher: AckedPublisher | None = None
        self._opening = asyncio.Lock()
        self._stream_ready = False
        self._dead_stream_ready = False
        self._handled = HandledBucket(names, settings.storage, settings.replicas)

    # -- the connection ---------------------------------------------------------------------

    async def ready_client(self) -> Client:
        """The connection: made on first use, made again if a connection we opened closed."""
        client = self.client
        if client is not None and not client.is_closed and not self.closed:  # or reconnecting
            return client
        async with self._opening:
            if self.closed:
                raise TransportError("this NatsJetStreamTransport is closed")
            client = self.client
            if client is None:
                self.client = client = await connect(
                    self.servers or [], lambda: self.closed, self.liveness
                )
            elif client.is_closed:
                if not self.owns_client:
                    raise TransportError("the NATS client given to the transport is closed")
                self._publisher = None
                self._js = None
                self.client = client = await connect(
                    self.servers or [], lambda: self.closed, self.liveness
                )
            return client

    async def ready_js(self) -> JetStreamContext:
        """The JetStream context of the connection, its requests bound by publish_timeout."""
        client = await self.ready_client()
        if self._js is None:
            self._js = client.jetstream(timeout=self.publish_timeout)
        return self._js

    async def ready_publisher(self) -> AckedPublisher:
        """The publisher of the connection, its reply subscription made."""
        client = await self.ready_client()
        if self._publisher is None:
            publisher = AckedPublisher(client, self.publish_timeout)
            await publisher.start()
            self._publisher = publisher
        return self._publisher

    async def close(self) -> None:
        """Close the subscriptions, the publisher, and the connection if we opened it."""
        self.closed = True
        for subscription in list(self.subscriptions):
            await subscription.close()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.stop()
        client = self.client
        if client is not None and self.owns_client:
            self.client = None
            if not client.is_closed:
                await client.close()
        self._js = None

    # -- streams and consumers --------------------------------------------------------------

    def stream_lost(self) -> None:
        """The event stream is gone (deleted on the server): the next use creates it again."""
        self._stream_ready = False

    async def ensure_stream(self) -> None:
        """Create the event stream if it does not exist (once per transport, or when lost)."""
        if self._stream_ready:
            return
        settings = self.settings
        config = api.StreamConfig(
            name=self.names.stream,
            description="quantum_core events",
            subjects=[f"{self.names.prefix}.events.>"],
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            max_msgs_per_subject=-1 if settings.maxlen is None else settings.maxlen,
            max_age=settings.max_age,
            storage=settings.storage,
            num_replicas=settings.replicas,
        )
        await self._add_stream(config)
        self._stream_ready = True

    async def ensure_dead_letter_stream(self) -> None:
        """Create the dead-letter stream if it does not exist."""
        if self._dead_stream_ready:
            return
        settings = self.settings
        config = api.StreamConfig(
            name=self.names.dead_stream,
            description="quantum_core dead letters",
            subjects=[f"{self.names.prefix}.dead.>"],
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            max_msgs_per_subject=settings.dead_letter_maxlen,
            duplicate_window=_DEAD_LETTER_DEDUP_WINDOW,
            storage=settings.storage,
            num_replicas=settings.replicas,
        )
        await self._add_stream(config)
        self._dead_stream_ready = True

    async def ensure_consumer(
        self, topic: str, group: str, *, from_beginning: bool, recreate: bool = False
    ) -> api.ConsumerInfo:
        """Return the group's consumer, creating it (at the end, or the start) if missing.

        An existing consumer goes on where it was, with the settings it has.
        """
        js = await self.ready_js()
        durable = self.names.durable(topic, group)
        if not recreate:
            try:
                info: api.ConsumerInfo = await js.consumer_info(self.names.stream, durable)
                return info
            except nats.js.errors.NotFoundError as exc:
                if not is_not_found(exc):
                    raise
        config = api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            description=self.names.consumer_description(topic, group),
            deliver_policy=api.DeliverPolicy.ALL if from_beginning else api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.settings.ack_wait,
            max_deliver=-1,  # the bus counts attempts and dead-letters; JetStream never drops
            filter_subject=self.names.subject(topic),
            max_ack_pending=self.settings.max_ack_pending,
        )
        return await js.add_consumer(self.names.stream, config)

    async def _add_stream(self, config: api.StreamConfig) -> None:
        js = await self.ready_js()
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_CONFIG_DIFFERS:
                raise TransportError(f"could not create stream {config.name!r}: {exc}") from exc
            _log.debug("nats_stream_kept", stream=config.name)  # someone else's settings win

    # -- dead letters and handled-records ---------------------------------------------------

    async def publish_dead_letter(self, topic: str, record: bytes, dedup_id: str) -> None:
        """Store a dead-letter record; the same ``dedup_id`` within the window stores nothing."""
        subject = self.names.dead_subject(topic)
        publisher = await self.ready_publisher()
        headers = {"Nats-Msg-Id": dedup_id}
        await self.ensure_dead_letter_stream()
        try:
            await publisher.publish(subject, (record,), headers)
        except nats.js.errors.NoStreamResponseError:
            self._dead_stream_ready = False
            await self.ensure_dead_letter_stream()
            await publisher.publish(subject, (record,), headers)

    async def mark_handled(self, group: str, event_ids: Sequence[str], ttl: float) -> None:
        """Put a key per event in the handled bucket, holding when it expires."""
        js = await self.ready_js()
        await self._handled.mark(js, await self.ready_publisher(), group, event_ids, ttl)

    async def was_handled(self, group: str, event_id: str) -> bool:
        """Whether the group's key for ``event_id`` exists and has not expired."""
        return await self._handled.seen(await self.ready_js(), group, event_id)
