"""RabbitMQ: a failed ack or dead letter leaves no event stuck in a consumer.

RabbitMQ holds what a consumer received until the consumer settles it or its channel
closes. An ack fails only when the channel is gone, and then the broker has put the message
back in the queue already; a dead letter whose record could not be stored hands the
message back at once. Either way another consumer gets it, and the bus may call ``ack`` or
``dead_letter`` again for the same delivery without an error for a loss already reported.
"""

import asyncio

import aio_pika
import pytest

from quantum_core import TransportError
from quantum_core.bus._rabbitmq_names import dead_letter_queue


async def _one(*subscriptions, timeout: float = 10.0):
    """The next delivery of any of ``subscriptions`` (None after ``timeout`` seconds)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                for subscription in subscriptions:
                    deliveries = await subscription.fetch(1, 0.2)
                    if deliveries:
                        return deliveries[0]
    except TimeoutError:
        return None


async def _close_by_channel_error(channel) -> None:
    """Make the broker close this channel (a passive declare of an exchange that is not)."""
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await channel.declare_exchange("qc-test-missing-exchange", passive=True)


async def test_an_ack_on_a_closed_channel_is_reported_once_and_the_event_comes_again(
    rabbitmq_transports,
):
    transport = rabbitmq_transports(history_max_bytes=0)
    first = await transport.subscribe("orders", group="svc:h", consumer="first")
    replica = await transport.subscribe("orders", group="svc:h", consumer="replica")
    await transport.publish("orders", [b"x"])
    delivery = await _one(first)  # the replica consumes from its first fetch on, not yet
    await _close_by_channel_error(first._channel)
    with pytest.raises(TransportError, match="channel closed; RabbitMQ delivers them again"):
        await first.ack([delivery])
    await first.ack([delivery])  # the bus tries again: nothing is left to do, no error
    again = await _one(replica)
    assert again is not None, "the broker did not requeue the message of the closed channel"
    assert (again.data, again.delivery_count) == (b"x", 2)
    await replica.ack([again])


async def test_a_dead_letter_that_could_not_be_stored_hands_the_event_back(
    amqp_url, rabbitmq_prefix, rabbitmq_transports, rabbitmq_declared
):
    # A queue of the dead-letter queue's name declared with other arguments: declaring it
    # again fails (PRECONDITION_FAILED), so the record cannot be stored.
    blocking = dead_letter_queue(rabbitmq_prefix, "orders")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(blocking, durable=True, arguments={"x-max-length": 7})
    rabbitmq_declared.add(blocking)

    transport = rabbitmq_transports(history_max_bytes=0)
    first = await transport.subscribe("orders", group="svc:h", consumer="first")
    await transport.publish("orders", [b"poison"])
    delivery = await _one(first)
    with pytest.raises(TransportError, match="could not store a dead letter"):
        await first.dead_letter(delivery, b"record")
    # Held by ``first`` until its channel closed, it is handed back now: the queue gives it
    # to a consumer again (here to ``first`` itself, the only one), counting the return.
    again = await _one(first, timeout=5)
    assert again is not None, "the message stayed with the consumer whose dead letter failed"
    assert (again.data, again.delivery_count) == (b"poison", 2)
    await first.dead_letter(delivery, b"record")  # tried again: it was handed back, no error

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(blocking)  # the dead-letter place works again
    await first.dead_letter(again, b"record")
    letters = await transport.read_dead_letters("orders", 10)
    assert [record for _, record in letters] == [b"record"]
    assert await _one(first, timeout=1.5) is None  # acknowledged: it never comes again
