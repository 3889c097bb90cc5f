"""The Kafka transport: topics per event type and consumer groups on a Kafka cluster.

Layout on the cluster (``prefix`` defaults to ``quantum_core``; letters, digits, ``_``, ``-``):

* topic ``{prefix}.events.{event type}``: every event of the type, created with
  ``partitions`` partitions (an existing topic keeps the partitions it has). An event
  published with an ordering key has that key as its message key: events of one key are
  on one partition, in publish order. Events without a key go to any partition.
* consumer group ``{prefix}:{group}:{event type}`` per subscribing group
  (``{service}:{handler}``): replicas of a service share the partitions.
* topic ``{prefix}.dead.{event type}``, one partition: its dead letters (``dead_letters.py``).

Delivery: ``getmany`` reads the assigned partitions; an offset is committed only after its
handler finished, and only up to the lowest offset still in flight on its partition
(``offsets.py``). A replica that dies holds its partitions until the group's session
timeout (``session_timeout``, 10 s by default) expires; then a live replica reads on from
the last commit. A rebalance waits, at most ``revoke_wait``, for the records in flight of
a partition that moves. The attempt number travels in the ``qc-attempt`` header of a copy
a closing replica stores for what it gave up (see ``subscription.py``).

Names: ``names.py``; URL options: ``url.py``; producer, admin and topics: ``state.py``;
commit points: ``offsets.py``; ``quantum-core topics``: ``listing.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from ..._checks import check_int, check_seconds
from ...bus.abilities import TopicSummary
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from ...errors import TransportError
from .names import PREFIX_PATTERN, Names
from .url import parse_kafka_url

try:
    from aiokafka.errors import KafkaError

    from .dead_letters import delete_letters, letter_id, read_log
    from .listing import list_topics
    from .publisher import BatchPublisher
    from .state import KafkaSettings, KafkaState
    from .subscription import KafkaSubscription
except ModuleNotFoundError as exc:  # the kafka extra is not installed
    if not (exc.name or "").startswith("aiokafka"):
        raise
    _KAFKA_MISSING: ModuleNotFoundError | None = exc
else:
    _KAFKA_MISSING = None

__all__ = ["KafkaTransport"]

_MISSING_EXTRA = (
    "the Kafka transport needs aiokafka, which is not installed: "
    "pip install 'quantum-core-sdk[kafka]'"
)


class KafkaTransport(Transport):
    """Event types as Kafka topics; groups as Kafka consumer groups.

    Args:
        servers: A ``kafka://host:port[,host:port...]`` URL, or a list of ``host:port``.
        prefix: Starts every topic and group name (letters, digits, ``_``, ``-``).
        partitions: Partitions of each topic the transport creates: how many replicas of a
            service can share one event type.
        replication_factor: Copies of each partition the transport creates.
        session_timeout: Seconds a replica may go silent before the group gives its
            partitions to the others: how long the events of a replica that died wait.
            Apache Kafka refuses less than its ``group.min.session.timeout.ms`` (6 s by
            default).
        revoke_wait: Seconds a rebalance waits for the records in flight of a partition that
            moves to another replica before letting it go (they are then read again).
        request_timeout: Seconds a request to the cluster may take; also the bound of the
            first connection (an unreachable cluster fails ``start()`` after it).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "kafka://127.0.0.1:9092",
        *,
        prefix: str = "quantum_core",
        partitions: int = 3,
        replication_factor: int = 1,
        session_timeout: float = 10.0,
        revoke_wait: float = 10.0,
        request_timeout: float = 10.0,
    ) -> None:
        if _KAFKA_MISSING is not None:
            raise ImportError(_MISSING_EXTRA) from _KAFKA_MISSING
        if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
            raise ValueError(
                f"prefix must be 1-64 letters, digits, '_' or '-' (it starts Kafka topic "
                f"names), got {prefix!r}"
            )
        if isinstance(servers, str):
            if "?" in servers:  # options given twice, or ignored: neither is what was meant
                raise ValueError(
                    "KafkaTransport takes its options as arguments, not in the URL's query; "
                    "use EventBus(url) or transport_from_url(url) for a URL with options"
                )
            hosts = parse_kafka_url(servers).servers
        elif isinstance(servers, Sequence) and servers and all(isinstance(s, str) for s in servers):
            hosts = list(servers)
        else:
            raise TypeError(
                f"KafkaTransport takes a kafka:// URL or a list of 'host:port', got {servers!r}"
            )
        settings = KafkaSettings(
            partitions=check_int("partitions", partitions),
            replication_factor=check_int("replication_factor", replication_factor),
            session_timeout=check_seconds("session_timeout", session_timeout, positive=True),
            revoke_wait=check_seconds("revoke_wait", revoke_wait, positive=True),
            request_timeout=check_seconds("request_timeout", request_timeout, positive=True),
        )
        self.prefix = prefix
        self.names = Names(prefix)
        self.settings = settings
        self._state = KafkaState(self.names, settings, hosts)
        self._publisher = BatchPublisher()

    def __repr__(self) -> str:
        return f"<KafkaTransport servers={self._state.shown} prefix={self.prefix!r}>"

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Publish every message; return once the cluster acknowledged each (acks=all)."""
        await self.publish_keyed(topic, messages, None)

    async def publish_keyed(
        self, topic: str, messages: Sequence[bytes], keys: Sequence[str | None] | None
    ) -> None:
        """Publish with message keys (one per message; None for no key): a key, a partition."""
        if not messages:
            return
        name = self.names.topic(topic)
        state = self._state
        encoded = [None if k is None else k.encode() for k in keys] if keys else None
        try:
            producer = await state.producer()
            await state.ensure_topics([name])
            await self._publisher.send(producer, name, messages, encoded)
        except KafkaError as exc:
            state.topic_lost(name)
            raise TransportError(
                f"Kafka at {state.shown} did not confirm storing {len(messages)} message(s) on "
                f"{name!r}: {exc!r}"
            ) from exc

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Join the group's consumer group; return once it assigned this replica's partitions."""
        state = self._state
        if state.closed:
            raise TransportError("this KafkaTransport is closed")
        await state.ensure_topics([self.names.topic(topic)])
        subscription = KafkaSubscription(
            state, topic, group, consumer, from_beginning=from_beginning
        )
        await subscription.start()
        state.subscriptions.add(subscription)
        return subscription

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """The topic's dead letters from the offset ``start`` on, oldest first."""
        first = 0 if start is None else letter_id(start)
        try:
            log = await read_log(self._state, topic)
        except KafkaError as exc:
            raise TransportError(f"reading dead letters of {topic!r} failed: {exc!r}") from exc
        return [(str(offset), record) for offset, record in log.letters if offset >= first][:limit]

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete these dead letters of the topic (all for None); count the ones we deleted."""
        try:
            if ids is None:
                offsets = [offset for offset, _ in (await read_log(self._state, topic)).letters]
            else:
                offsets = [letter_id(letter) for letter in ids]
            return await delete_letters(self._state, topic, offsets)
        except KafkaError as exc:
            raise TransportError(f"deleting dead letters of {topic!r} failed: {exc!r}") from exc

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` as a dead letter of ``topic`` again, under a new offset."""
        key = f"restored:{os.urandom(8).hex()}".encode()
        try:
            await self._state.write_dead_letter(topic, record, key)
        except KafkaError as exc:
            raise TransportError(f"storing a dead letter of {topic!r} failed: {exc!r}") from exc

    async def list_topics(self) -> Sequence[TopicSummary]:
        """Every event type of the prefix (events or dead-letter topic), sorted, with its groups.

        ``length``: records kept on the events topic; ``dead_letters``: what
        ``bus.dead_letters()`` would show; a group's ``lag``: records after its commit.
        ``pending`` is None: what a replica holds uncommitted is not seen from outside (see
        ``listing.py`` for the other None). Read-only; each request bounded by
        ``request_timeout``.
        """
        if self._state.closed:
            raise TransportError("this KafkaTransport is closed")
        try:
            return await list_topics(self._state)
        except KafkaError as exc:
            raise TransportError(
                f"listing the topics of Kafka at {self._state.shown} failed: {exc!r}"
            ) from exc

    async def ping(self) -> None:
        """Ask the cluster for its metadata."""
        try:
            admin = await self._state.admin()
            async with asyncio.timeout(self.settings.request_timeout):
                await admin.describe_cluster()
        except (KafkaError, TimeoutError) as exc:
            raise TransportError(f"Kafka at {self._state.shown} did not answer: {exc!r}") from exc

    async def close(self) -> None:
        """Close the subscriptions, the producer and the admin client."""
        await self._state.close()


def transport_from_kafka_url(url: str) -> KafkaTransport:
    """Build a transport from ``kafka://host:9092[,host2:9092]?option=...``.

    Options in the query: ``prefix``, ``partitions``, ``replication_factor``,
    ``session_timeout``, ``revoke_wait`` and ``request_timeout``.
    """
    if _KAFKA_MISSING is not None:
        raise ImportError(_MISSING_EXTRA) from _KAFKA_MISSING
    parsed = parse_kafka_url(url)
    return KafkaTransport(parsed.servers, **parsed.options)


register_transport("kafka", transport_from_kafka_url)
