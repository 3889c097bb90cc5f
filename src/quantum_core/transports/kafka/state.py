"""What the Kafka transport and its subscriptions share: servers, settings, producer, topics.

The transport makes one :class:`KafkaState` and hands it to every subscription. The producer
(``acks="all"``) and the admin client are made on first use; topics are created once per
transport (an existing topic keeps the partitions it has).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ...errors import TransportError
from .names import ATTEMPT_HEADER, FOR_GROUP_HEADER, Names

if TYPE_CHECKING:
    from .subscription import KafkaSubscription

__all__ = ["KafkaSettings", "KafkaState"]


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How the transport creates topics and runs its consumers."""

    partitions: int
    replication_factor: int
    session_timeout: float
    revoke_wait: float
    request_timeout: float

    @property
    def heartbeat_interval(self) -> float:
        """A third of the session timeout, Kafka's advice."""
        return self.session_timeout / 3


class KafkaState:
    """The servers, producer, admin client and known topics of one transport.

    Attributes:
        names: Topic and group names of the prefix.
        settings: Partitions, timeouts.
        servers: ``host:port`` bootstrap servers.
        subscriptions: The open subscriptions, closed with the transport.
        closed: The transport was closed: nothing connects again.
    """

    def __init__(self, names: Names, settings: KafkaSettings, servers: list[str]) -> None:
        self.names = names
        self.settings = settings
        self.servers = servers
        self.subscriptions: set[KafkaSubscription] = set()
        self.closed = False
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._opening = asyncio.Lock()
        self._topics: set[str] = set()
        self.dead_letter_writes = asyncio.Lock()
        """Held while a dead-letter topic is written: one record per batch (see above)."""

    @property
    def shown(self) -> str:
        """The servers, for errors and logs (they hold no credentials)."""
        return ",".join(self.servers)

    def unreachable(self, exc: BaseException) -> TransportError:
        """The error for a cluster that did not answer, naming its address."""
        return TransportError(f"could not reach Kafka at {self.shown}: {exc!r}")

    async def started(self, client: AIOKafkaProducer | AIOKafkaAdminClient) -> None:
        """Start an aiokafka client within ``request_timeout``, or raise naming the servers."""
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                await client.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await _quietly_close(client)
            raise self.unreachable(exc) from exc

    async def producer(self) -> AIOKafkaProducer:
        """The producer: ``acks="all"``, made on first use."""
        if self._producer is not None:
            return self._producer
        async with self._opening:
            if self.closed:
                raise TransportError("this KafkaTransport is closed")
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.servers,
                    acks="all",
                    client_id="quantum_core",
                    request_timeout_ms=int(self.settings.request_timeout * 1000),
                    retry_backoff_ms=200,
                )
                await self.started(producer)
                self._producer = producer
            return self._producer

    async def admin(self) -> AIOKafkaAdminClient:
        """The admin client, made on first use."""
        if self._admin is not None:
            return self._admin
        async with self._opening:
            if self.closed:
                raise TransportError("this KafkaTransport is closed")
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.servers,
                    client_id="quantum_core-admin",
                    request_timeout_ms=int(self.settings.request_timeout * 1000),
                )
                await self.started(admin)
                self._admin = admin
            return self._admin

    async def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` exists (a reader asks, so that reading never creates one)."""
        if topic in self._topics:
            return True
        admin = await self.admin()
        try:
            found = topic in await admin.list_topics()
        except KafkaError as exc:
            raise TransportError(f"could not list Kafka topics: {exc!r}") from exc
        if found:
            self._topics.add(topic)
        return found

    async def ensure_topics(self, topics: Sequence[str], *, partitions: int | None = None) -> None:
        """Create the topics that do not exist yet (once per transport)."""
        missing = [topic for topic in topics if topic not in self._topics]
        if not missing:
            return
        admin = await self.admin()
        settings = self.settings
        new = [
            NewTopic(topic, partitions or settings.partitions, settings.replication_factor)
            for topic in missing
        ]
        try:
            response = await admin.create_topics(new)
        except TopicAlreadyExistsError:
            response = None
        except KafkaError as exc:
            raise TransportError(f"could not create Kafka topics {missing}: {exc!r}") from exc
        for topic, code, message in getattr(response, "topic_errors", ()):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise TransportError(
                    f"could not create Kafka topic {topic!r}: error {code} {message or ''}"
                )
        self._topics.update(missing)

    async def write_dead_letter(self, event_type: str, record: bytes, key: bytes) -> None:
        """Append a dead-letter record (partition 0 of its topic) and wait for acks=all.

        One at a time: a record per batch. Tansu reports the end of a topic whose last batch
        held several records as that batch's first offset + 1, and dead letters are read up
        to the end; on Kafka this costs nothing that matters (dead letters are rare).
        """
        topic = self.names.dead_topic(event_type)
        await self.ensure_topics([topic], partitions=1)
        producer = await self.producer()
        async with self.dead_letter_writes:
            await producer.send_and_wait(topic, record, key=key, partition=0)

    async def store_copies(
        self, topic: str, group: str, copies: Sequence[tuple[int, bytes | None, bytes, int]]
    ) -> None:
        """Append copies of given-up records for ``group``: (partition, key, value, attempt)."""
        producer = await self.producer()
        for_group = group.encode()
        sent = [
            await producer.send(
                topic,
                value,
                key=key,
                partition=partition,
                headers=[(ATTEMPT_HEADER, str(attempt).encode()), (FOR_GROUP_HEADER, for_group)],
            )
            for partition, key, value, attempt in copies
        ]
        await asyncio.gather(*sent)

    def topic_lost(self, topic: str) -> None:
        """The topic may be gone (a broker that lost its data): create it on next use."""
        self._topics.discard(topic)

    async def close(self) -> None:
        """Close the subscriptions, the producer and the admin client."""
        self.closed = True
        for subscription in list(self.subscriptions):
            await subscription.close()
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        for client in (producer, admin):
            if client is not None:
                await _quietly_close(client)


async def _quietly_close(client: AIOKafkaProducer | AIOKafkaAdminClient) -> None:
    try:
        async with asyncio.timeout(5):
            if isinstance(client, AIOKafkaAdminClient):
                await client.close()
            else:
                await client.stop()
    except (KafkaError, OSError, TimeoutError):
        pass
