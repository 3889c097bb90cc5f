"""A RabbitMQ transport that notes the queues it uses, so that a test's cleanup finds them.

RabbitMQ cannot list queues over AMQP (only its management plugin can), and a queue stays
on the server until deleted. The names are the transport's own (``names.py``), from the
topics and groups it was used with.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..bus.transport import Subscription
from ..transports.rabbitmq import RabbitMQTransport
from ..transports.rabbitmq.names import dead_letter_queue, group_queue, history_stream

__all__ = ["NotingRabbitMQTransport"]


class NotingRabbitMQTransport(RabbitMQTransport):
    """A :class:`RabbitMQTransport` on ``url`` that adds each queue it may declare to ``noted``."""

    def __init__(self, url: str, noted: set[str]) -> None:
        super().__init__(url)
        self._noted = noted

    def _note(self, topic: str, group: str | None = None) -> None:
        self._noted.add(history_stream(self.prefix, topic))
        self._noted.add(dead_letter_queue(self.prefix, topic))
        if group is not None:
            self._noted.add(group_queue(self.prefix, topic, group))

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        """Publish, noting the topic's history stream and dead-letter queue."""
        self._note(topic)
        await super().publish(topic, messages)

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        """Subscribe, noting the group's queue too."""
        self._note(topic, group)
        return await super().subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )

    async def restore_dead_letter(self, topic: str, record: bytes) -> None:
        """Restore a dead letter, noting the topic's queues."""
        self._note(topic)
        await super().restore_dead_letter(topic, record)
