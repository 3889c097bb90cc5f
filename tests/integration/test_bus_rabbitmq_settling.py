"""RabbitMQ: a failed ack or dead letter leaves no event stuck in a consumer.

RabbitMQ holds what a consumer received until the consumer settles it or its channel
closes. An ack fails only when the channel is gone, and then the broker has put the message
back in the queue already, for another consumer: ``DeliveryGoneError`` says so, and a later
call for the same delivery has nothing to do. A dead letter whose record could not be stored
keeps the message held, and the bus tries again with backoff.
"""

import asyncio

import aio_pika
import pytest

from quantum_core import DeliveryGoneError, EventBus, TransportError
from quantum_core.transports.rabbitmq.names import dead_letter_queue


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
    with pytest.raises(DeliveryGoneError, match="channel closed; RabbitMQ delivers them again"):
        await first.ack([delivery])
    await first.ack([delivery])  # the bus tries again: nothing is left to do, no error
    again = await _one(replica)
    assert again is not None, "the broker did not requeue the message of the closed channel"
    assert (again.data, again.delivery_count) == (b"x", 2)
    await replica.ack([again])


async def test_a_dead_letter_that_could_not_be_stored_is_kept_for_the_next_try(
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
    with pytest.raises(TransportError, match="could not store a dead letter") as refused:
        await first.dead_letter(delivery, b"record")
    assert not isinstance(refused.value, DeliveryGoneError)  # worth trying again
    # Still held for the bus's next try: not passed round the consumers without pause.
    assert await _one(first, timeout=1) is None

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(blocking)  # the dead-letter place works again
    await first.dead_letter(delivery, b"record")  # the bus's next try
    letters = await transport.read_dead_letters("orders", 10)
    assert [record for _, record in letters] == [b"record"]
    assert await _one(first, timeout=1.5) is None  # acknowledged: it never comes again


async def test_the_bus_retries_a_refused_dead_letter_and_counts_it_once_stored(
    amqp_url, rabbitmq_prefix, rabbitmq_transports, rabbitmq_declared, log_lines
):
    """A record the broker refused: tried again with backoff, counted once it is stored."""
    blocking = dead_letter_queue(rabbitmq_prefix, "orders")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(blocking, durable=True, arguments={"x-max-length": 7})
    rabbitmq_declared.add(blocking)

    async def always_fails(payload: dict) -> None:
        raise ValueError("poison")

    transport = rabbitmq_transports(history_max_bytes=0)
    bus = EventBus(transport, service_name="svc", max_attempts=1, retry_backoff=0.01)
    bus.subscribe("orders", always_fails, name="h")
    async with bus:
        await bus.publish("orders", {"n": 1})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not log_lines.named("dead_letter_failed"):
            assert loop.time() < deadline, "the refused dead letter was never reported"
            await asyncio.sleep(0.05)
        (stats,) = (await bus.stats()).values()
        assert stats.dead_lettered == 0
        assert stats.failed == 1  # held for the next try, not handed round

        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(blocking)  # the dead-letter place works again
        while (await bus.stats())["orders -> h"].dead_lettered < 1:
            assert loop.time() < deadline + 10, "the event was never set aside"
            await asyncio.sleep(0.05)
        letters = await bus.dead_letters("orders")
        assert len(letters) == 1
        assert (await bus.stats())["orders -> h"].dead_lettered == 1
