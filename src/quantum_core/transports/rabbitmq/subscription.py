"""The RabbitMQ subscription: one consumer on a group's quorum queue, behind a pull API.

The bus pulls (``fetch(max_count, timeout)``); RabbitMQ pushes. A consumer (basic.consume)
with a prefetch window fills a local buffer that ``fetch`` drains without a round trip, which
is what keeps up with the broker: basic.get would cost one round trip per message.

Its prefetch is a window of messages the consumer may hold unacknowledged, sized at the first
fetch from the bus's read count. The bus holds fetched events until they are handled, and
events waiting for a retry can hold them for seconds; were the window full of those, the
consumer would get nothing else. RabbitMQ applies basic.qos only to consumers started after
it, so instead of growing the window, the subscription then starts a fresh consumer on the
same channel (the old one cancelled, its messages still acknowledgeable): a new window for
new events, while the bus bounds how many it keeps waiting (see ``bus/dispatch.py``).

What it shares with its transport (connections, declarations, the dead-letter queue) comes
in a ``RabbitMQState`` (``state.py``).

Acks wait while the old consumer is cancelled. An ack the broker took during the cancel
would free a place in the old window; the quorum queue would deliver into it, find the
consumer gone and return the message, counting in ``x-delivery-count`` a delivery that no
handler saw (an event with retries left could then be dead-lettered one attempt early).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustQueue,
)

from ...bus.transport import Backlog, Delivery, Subscription
from ...errors import DeliveryGoneError, TransportError
from ...logs import get_logger
from .state import AMQP_ERRORS

if TYPE_CHECKING:
    from .state import RabbitMQState

__all__ = ["RabbitMQSubscription", "delivery_count"]

_log = get_logger("quantum_core.bus.rabbitmq")
_WINDOW = 32
"""The smallest prefetch; it is four fetches' worth when those are larger."""
_ACK_ERRORS: tuple[type[BaseException], ...] = (
    *AMQP_ERRORS,
    aio_pika.exceptions.MessageProcessError,
)


class RabbitMQSubscription(Subscription):
    """One consumer of a group's queue: a buffer fed by basic.consume, acked after handling."""

    def __init__(
        self,
        state: RabbitMQState,
        topic: str,
        group: str,
        channel: AbstractChannel,
        queue: AbstractQueue,
    ) -> None:
        self._state = state
        self._topic = topic
        self._group = group
        self._channel = channel
        self._queue = queue
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._readable = asyncio.Event()
        self._consumer_tag: str | None = None
        self._outstanding: dict[str, int] = {}  # consumer tag -> delivered, not acknowledged
        self._prefetch = 0
        self._settling = asyncio.Lock()  # acks, and the cancel of a consumer with a full window
        # Messages the broker took back (their channel closed) that a call already reported:
        # a later call for one has nothing left to do.
        self._reported_lost: set[AbstractIncomingMessage] = set()
        self._closed = False

    async def _consume(self, max_count: int) -> None:
        """Start a consumer with a window of four fetches (at least ``_WINDOW``)."""
        prefetch = max(_WINDOW, 4 * max_count)
        if prefetch != self._prefetch:
            await self._channel.set_qos(prefetch_count=prefetch)
            self._prefetch = prefetch
        arguments: dict[str, Any] = {}
        timeout = self._state.settings.consumer_timeout_ms
        if timeout is not None:
            arguments["x-consumer-timeout"] = timeout
        if isinstance(self._queue, AbstractRobustQueue):  # recovery is ours: see _resume
            tag = await self._queue.consume(
                self._on_message, no_ack=False, arguments=arguments or None, robust=False
            )
        else:
            tag = await self._queue.consume(
                self._on_message, no_ack=False, arguments=arguments or None
            )
        self._outstanding.setdefault(tag, 0)
        self._consumer_tag = tag

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        tag = message.consumer_tag or ""
        self._outstanding[tag] = self._outstanding.get(tag, 0) + 1
        self._buffer.append(message)
        self._readable.set()

    def _settled(self, message: AbstractIncomingMessage) -> None:
        tag = message.consumer_tag or ""
        left = self._outstanding.get(tag, 0) - 1
        if left > 0 or tag == self._consumer_tag:
            self._outstanding[tag] = max(0, left)
        else:
            self._outstanding.pop(tag, None)

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        """Take up to ``max_count`` buffered messages, waiting up to ``timeout`` for one."""
        if not self._buffer and not self._closed:
            if self._channel.is_closed:
                raise TransportError(
                    f"the RabbitMQ channel of {self._group!r} is closed; reconnecting"
                )
            try:
                async with asyncio.timeout(self._state.settings.publish_timeout):
                    if self._consumer_tag is None:
                        await self._consume(max_count)
                    elif self._outstanding.get(self._consumer_tag, 0) >= self._prefetch:
                        await self._renew_consumer(max_count)
            except AMQP_ERRORS as exc:
                raise TransportError(f"consuming for {self._group!r} failed: {exc}") from exc
            self._readable.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._readable.wait()
            if not self._buffer and not self._closed and await self._consumer_lost():
                await self._resume()
        # No await from here on: a cancelled fetch takes nothing from the buffer.
        deliveries: list[Delivery] = []
        while self._buffer and len(deliveries) < max_count and not self._closed:
            message = self._buffer.popleft()
            try:
                message.channel  # noqa: B018 - raises if its channel died (then redelivered)
            except aio_pika.exceptions.ChannelInvalidStateError:
                self._settled(message)
                continue
            deliveries.append(Delivery(message.body, message, delivery_count(message)))
        return deliveries

    async def _renew_consumer(self, max_count: int) -> None:
        """Replace the consumer whose window is full of events the bus holds.

        With no ack under way and the window still full, the broker has no place to deliver
        into: nothing is on its way to the consumer being cancelled, so nothing is returned.
        """
        async with self._settling:
            tag = self._consumer_tag
            if tag is None or self._outstanding.get(tag, 0) < self._prefetch:
                return  # an ack freed a place: a delivery is on its way to this consumer
            await self._queue.cancel(tag)
            self._consumer_tag = None  # a fetch cancelled here starts a consumer next time
            await self._consume(max_count)

    async def _consumer_lost(self) -> bool:
        """Whether our consumer is gone: cancelled by the broker, or its channel reconnected."""
        if self._consumer_tag is None or self._channel.is_closed:
            return False
        try:
            underlay = await self._channel.get_underlay_channel()
        except AMQP_ERRORS:
            return False
        consumers = getattr(underlay, "consumers", None)  # aiormq drops a cancelled tag
        return isinstance(consumers, dict) and self._consumer_tag not in consumers

    async def _resume(self) -> None:
        """Consume again (next fetch); if the group's queue is gone, declare it again first.

        A queue deleted on the server comes back filled from the topic's history: as on
        Redis, a lost group restarts from the oldest event kept, never the newest, so what
        was published while it was missing is not skipped (some may come twice).
        """
        self._outstanding.pop(self._consumer_tag or "", None)
        self._consumer_tag = None
        try:
            async with asyncio.timeout(self._state.settings.publish_timeout):
                if await self._state.queue_exists(self._queue.name):
                    return  # the connection came back: the queue kept what it held
            _log.warning("consumer_group_recreated", queue=self._queue.name, group=self._group)
            await self._state.declare_group(
                self._channel, self._topic, self._group, self._queue.name
            )
        except AMQP_ERRORS as exc:
            raise TransportError(f"recreating the queue of {self._group!r} failed: {exc}") from exc

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """basic.ack each message on the channel that delivered it.

        An ack fails only when that channel is gone, and then RabbitMQ has put the message
        back in the queue already, for any consumer: the first call that meets it says so
        (``DeliveryGoneError``, so the bus does not try again); a later call for it has
        nothing left to do, and neither has one for a message acknowledged or handed back
        before.
        """
        failed = 0
        async with self._settling:
            for delivery in deliveries:
                message: AbstractIncomingMessage = delivery.receipt
                if message.processed or message in self._reported_lost:
                    self._reported_lost.discard(message)
                    continue
                try:
                    await message.ack()
                except _ACK_ERRORS:
                    failed += 1
                    self._reported_lost.add(message)
                self._settled(message)
        if failed:
            raise DeliveryGoneError(
                f"could not acknowledge {failed} message(s) of {self._group!r}: their channel "
                "closed; RabbitMQ delivers them again"
            )

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Store the record (publisher-confirmed) in the dead-letter queue, then ack.

        A crash between the two leaves the message pending: it comes back, and a second
        record for it carries the same origin, which ``read_dead_letters`` shows once.

        A record that could not be stored raises ``TransportError`` and the message stays
        held: the bus tries again with backoff (handing it back instead would make every
        consumer of a broken dead-letter place pass it round without pause). Its channel
        closing meanwhile puts it back in the queue, for any consumer; the next call then
        raises ``DeliveryGoneError``, and a call after that has nothing left to do.
        """
        message: AbstractIncomingMessage = delivery.receipt
        if message.processed or message in self._reported_lost:
            self._reported_lost.discard(message)
            return  # settled or lost earlier, and said so: nothing is left to do
        try:
            message.channel  # noqa: B018 - a dead channel: the message comes back anyway
        except aio_pika.exceptions.ChannelInvalidStateError:
            self._settled(message)
            self._reported_lost.add(message)
            raise DeliveryGoneError(
                f"cannot dead-letter a message of {self._group!r}: its channel closed; "
                "RabbitMQ delivers it again"
            ) from None
        origin = f"{self._group}|{message.message_id}" if message.message_id else None
        await self._state.store_dead_letter(self._topic, record, origin)
        await self.ack((delivery,))

    async def backlog(self) -> Backlog:
        """Pending: what this consumer holds. Lag: the queue's ready messages."""
        ready = await self._state.ready_count(self._queue.name)
        return Backlog(pending=sum(self._outstanding.values()), lag=ready)

    async def close(self) -> None:
        """Cancel the consumer and close its channel: what is unacknowledged is requeued.

        Both wait for the broker's answer, at most ``publish_timeout`` together: on a
        connection that went silent the broker requeues what it held once it notices
        (missed heartbeats), whether or not we waited.
        """
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._reported_lost.clear()
        with contextlib.suppress(*AMQP_ERRORS, asyncio.CancelledError):
            async with asyncio.timeout(self._state.settings.publish_timeout):
                if self._consumer_tag is not None and not self._channel.is_closed:
                    await self._queue.cancel(self._consumer_tag)
                await self._channel.close()
        self._state.subscriptions.discard(self)


def delivery_count(message: AbstractIncomingMessage) -> int:
    """1 for a first delivery, then one more per return (the quorum queue's count)."""
    headers = message.headers or {}
    returned = headers.get("x-delivery-count")
    count = 1 + int(returned) if isinstance(returned, int) and returned >= 0 else 1
    if message.redelivered and count < 2:
        count = 2
    return count
