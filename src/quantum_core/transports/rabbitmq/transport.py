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

What the transport and its subscriptions share (connections, channels, declarations) is in
``state.py``; URL options in ``url.py``; dead letters in ``dead_letters.py``; the history
streams in ``history.py`` (read through ``streams.py``); the catalog of topics and groups
that ``list_topics`` reads in ``catalog.py``; channels that wait out a reconnect in
``channels.py``.

Not here: handled-records for ``idempotent=True`` (RabbitMQ keeps no keys; use Redis), and
a group-wide pending count (AMQP 0-9-1 tells a queue's ready messages, not what other
consumers hold unacknowledged: ``backlog()`` reports this consumer's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Sequence
from typing import Any

try:
    import aio_pika
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "the RabbitMQ transport (amqp:// URLs) needs aio-pika: "
        "pip install 'quantum-core-sdk[rabbitmq]'"
    ) from exc
from aio_pika.abc import AbstractConnection

from ..._checks import check_int, check_seconds
from ...bus.abilities import TopicSummary
from ...bus.registry import register_transport
from ...bus.transport import Subscription, Transport
from ...errors import TransportError
from .channels import open_channel
from .dead_letters import browse_dead_letters, check_id, delete_by_id
from .names import check_prefix, check_topic, dead_letter_queue, group_queue
from .state import AMQP_ERRORS, CHANNEL_GONE, RabbitMQSettings, RabbitMQState
from .subscription import RabbitMQSubscription
from .url import redact_url, split_options

__all__ = ["RabbitMQTransport"]

_PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
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
        url: str | None = None
        if isinstance(connection, str):
            url, from_url = split_options(connection)
            shown = redact_url(connection)
            given_connection: AbstractConnection | None = None
        elif isinstance(connection, aio_pika.abc.AbstractConnection):
            shown = redact_url(str(getattr(connection, "url", "amqp://(connection)")))
            given_connection = connection
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
        history_max_bytes = check_int("history_max_bytes", options["history_max_bytes"], minimum=0)
        history_max_age = options["history_max_age"]
        if history_max_age is not None:
            history_max_age = check_seconds("history_max_age", history_max_age, positive=True)
        dead_letter_max = check_int("dead_letter_max", options["dead_letter_max"])
        timeout = options["consumer_timeout"]
        if timeout is not None:
            timeout = check_seconds("consumer_timeout", timeout, positive=True)
        self.publish_timeout = check_seconds(
            "publish_timeout", options["publish_timeout"], positive=True
        )
        settings = RabbitMQSettings(
            prefix=self.prefix,
            history_max_bytes=history_max_bytes,
            history_max_age=history_max_age,
            dead_letter_max=dead_letter_max,
            consumer_timeout_ms=None if timeout is None else int(timeout * 1000),
            publish_timeout=self.publish_timeout,
        )
        self._state = RabbitMQState(settings, url=url, shown=shown, given=given_connection)
        self._ids = itertools.count(1)
        self._id_base = os.urandom(6).hex()

    def __repr__(self) -> str:
        return repr(self._state)

    @property
    def keeps_history(self) -> bool:
        """Whether topics keep a history stream, so groups can start ``from_beginning``."""
        return self._state.settings.keeps_history

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Publish every message, concurrently, and return once the broker confirmed all.

        The transport's first publish to a topic notes it in the catalog first (one more
        confirmed publish, ``catalog.py``) and declares its history stream.

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
            raise self._state.error(
                f"could not publish to {topic!r}",
                TransportError(
                    f"RabbitMQ did not confirm {len(outgoing)} message(s) within "
                    f"{self.publish_timeout:g} s"
                ),
            ) from None
        except AMQP_ERRORS as exc:
            raise self._state.error(f"could not publish to {topic!r}", exc) from exc
        if left:
            raise self._state.error(
                f"could not publish to {topic!r}",
                TransportError("the channel (or its connection) closed twice"),
            )

    async def _publish(
        self, topic: str, outgoing: list[tuple[bytes, str]]
    ) -> list[tuple[bytes, str]]:
        """Publish on the current channel; return what its closing left unconfirmed.

        Raises ``TimeoutError`` when the broker did not confirm within ``publish_timeout``.
        """
        _, exchange = await self._state.publisher()
        async with asyncio.timeout(self.publish_timeout):
            try:
                await self._state.ensure_topic(topic)  # the catalog's note, the history stream
            except CHANNEL_GONE:
                return outgoing
            if len(outgoing) == 1:
                try:
                    await exchange.publish(_message(*outgoing[0]), topic, mandatory=False)
                except CHANNEL_GONE:
                    return outgoing
                return []
            results = await asyncio.gather(
                *(exchange.publish(_message(*item), topic, mandatory=False) for item in outgoing),
                return_exceptions=True,
            )
        left = []
        for item, result in zip(outgoing, results, strict=True):
            if isinstance(result, CHANNEL_GONE):
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
            connection = await self._state.connection("consume")
            fill = from_beginning and not await self._state.queue_exists(name)
            channel = await open_channel(connection, confirms=False)
            try:
                queue = await self._state.declare_group(channel, topic, group, name, fill=fill)
                subscription = RabbitMQSubscription(self._state, topic, group, channel, queue)
            except BaseException:
                with contextlib.suppress(*AMQP_ERRORS):
                    await channel.close()
                raise
        except AMQP_ERRORS as exc:
            raise self._state.error(f"could not subscribe {group!r} to {topic!r}", exc) from exc
        self._state.subscriptions.add(subscription)
        return subscription

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        """Browse the topic's dead-letter queue (see ``dead_letters.py``)."""
        first = None if start is None else check_id(start)
        name = dead_letter_queue(self.prefix, check_topic(topic))
        try:
            if limit <= 0 or not await self._state.queue_exists(name):
                return []
            return await browse_dead_letters(
                await self._state.connection("consume"), name, limit, first
            )
        except AMQP_ERRORS as exc:
            raise self._state.error(f"reading dead letters of {topic!r} failed", exc) from exc

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Store ``record`` in the topic's dead-letter queue again, under a new id."""
        await self._state.store_dead_letter(check_topic(topic), record, None)

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        """Delete these dead letters (acknowledge them), or purge the queue for None."""
        wanted = None if ids is None else [check_id(letter_id) for letter_id in ids]
        name = dead_letter_queue(self.prefix, check_topic(topic))
        try:
            if wanted == [] or not await self._state.queue_exists(name):
                return 0
            connection = await self._state.connection("consume")
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
            raise self._state.error(f"deleting dead letters of {topic!r} failed", exc) from exc

    async def list_topics(self) -> Sequence[TopicSummary]:
        """Every topic of the prefix's catalog (``catalog.py``), sorted, with its groups.

        Reads the catalog, then a passive declare per queue; may append a snapshot to the
        catalog, so that what it lists stays there. A group's lag is its queue's ready
        messages; pending and the topic's length are None (AMQP 0-9-1 does not tell them);
        a group whose queue was deleted is left out. The whole listing is bounded by
        ``publish_timeout``.
        """
        try:
            async with asyncio.timeout(self.publish_timeout):
                return await self._state.list_topics()
        except AMQP_ERRORS as exc:
            raise self._state.error("could not list the topics", exc) from exc

    async def ping(self) -> None:
        """Declare the exchange again: a round trip that proves the broker answers."""
        try:
            async with asyncio.timeout(self.publish_timeout):
                channel, _ = await self._state.publisher()
                await channel.declare_exchange(
                    self.prefix, aio_pika.ExchangeType.TOPIC, durable=True
                )
        except AMQP_ERRORS as exc:
            raise self._state.error("RabbitMQ did not answer", exc) from exc

    async def close(self) -> None:
        """Close the subscriptions, then the connections this transport opened.

        Each step runs for all at once and is bounded on a connection that went silent: a
        subscription's goodbye by ``publish_timeout``, a connection's close by aiormq's wait
        for the broker's answer (2 s). A connection takes its channels with it; those of a
        connection we were given are closed one by one.
        """
        await self._state.close()


def _message(data: bytes, message_id: str) -> aio_pika.Message:
    return aio_pika.Message(data, delivery_mode=_PERSISTENT, message_id=message_id)


def transport_from_amqp_url(url: str) -> RabbitMQTransport:
    """Build a transport from an ``amqp://`` or ``amqps://`` URL (options in its query)."""
    return RabbitMQTransport(url)


register_transport("amqp", transport_from_amqp_url)
register_transport("amqps", transport_from_amqp_url)
