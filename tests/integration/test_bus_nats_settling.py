"""NATS JetStream: a dead letter that could not be stored leaves no event stuck in a consumer.

A live subscription keeps what it holds alive with in-progress acks (``+WPI``). After a
failed ``dead_letter`` it must stop doing so for that message, so that ``ack_wait`` gives it
to a replica; and the bus may call ``dead_letter`` again for the same delivery later.

The dead-letter place is made to refuse records on the real server: a dead-letter stream
created beforehand that holds one message and discards new ones (the transport keeps an
existing stream's settings), filled.
"""

import asyncio
import time

import nats
import pytest
from nats.js import api

from quantum_core import NatsJetStreamTransport, TransportError
from quantum_core.testing import eventually


@pytest.fixture
async def js(nats_url):
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def make(nats_url, nats_prefix):
    made = []

    def make_transport(**options):
        transport = NatsJetStreamTransport(nats_url, prefix=nats_prefix, **options)
        made.append(transport)
        return transport

    yield make_transport
    for transport in made:
        await transport.close()


@pytest.fixture
async def full_dead_letter_stream(js, nats_prefix):
    """The prefix's dead-letter stream, full and refusing more; purge it to make room."""
    stream = f"{nats_prefix}_dead_letters"
    await js.add_stream(
        api.StreamConfig(
            name=stream,
            subjects=[f"{nats_prefix}.dead.>"],
            max_msgs=1,
            discard=api.DiscardPolicy.NEW,
            storage=api.StorageType.MEMORY,
        )
    )
    await js.publish(f"{nats_prefix}.dead.filler", b"takes the only place")
    return stream


async def _one(subscription, timeout: float):
    """The next delivery of ``subscription``, waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = await subscription.fetch(1, 0.5)
        if deliveries:
            return deliveries[0]
    return None


async def test_a_message_whose_dead_letter_failed_goes_to_a_replica(make, full_dead_letter_stream):
    transport = make(ack_wait=1.0)
    first = await transport.subscribe("orders", group="g", consumer="first")
    replica = await transport.subscribe("orders", group="g", consumer="replica")
    await transport.publish("orders", [b"poison"])
    delivery = await _one(first, 5)
    assert delivery is not None
    with pytest.raises(TransportError, match="dead-lettering on"):
        await first.dead_letter(delivery, b"record")
    # ``first`` would keep it alive (in-progress acks every ack_wait / 3) for ever.
    again = await _one(replica, 1.0 * 4)
    assert again is not None, "the message stayed with the consumer whose dead letter failed"
    assert (again.data, again.delivery_count) == (b"poison", 2)


async def test_dead_letter_may_be_called_again_for_the_same_delivery(
    make, js, full_dead_letter_stream
):
    transport = make(ack_wait=30.0)
    subscription = await transport.subscribe("orders", group="g", consumer="c")
    await transport.publish("orders", [b"poison"])
    delivery = await _one(subscription, 5)
    with pytest.raises(TransportError):
        await subscription.dead_letter(delivery, b"record")
    await js.purge_stream(full_dead_letter_stream)  # the dead-letter place takes records again
    await subscription.dead_letter(delivery, b"record")
    await subscription.dead_letter(delivery, b"record")  # once more: stored and acked once
    letters = await transport.read_dead_letters("orders", 10)
    assert [record for _, record in letters] == [b"record"]
    await _until_acknowledged(subscription)
    assert await _one(subscription, 1.5) is None


async def test_an_ack_sent_twice_is_harmless(make):
    transport = make(ack_wait=30.0)
    subscription = await transport.subscribe("orders", group="g", consumer="c")
    await transport.publish("orders", [b"a", b"b"])
    deliveries = []
    async with asyncio.timeout(5):
        while len(deliveries) < 2:
            deliveries += await subscription.fetch(2, 0.5)
    await subscription.ack(deliveries)
    await subscription.ack(deliveries)  # as the bus does after an ack it thinks failed
    await _until_acknowledged(subscription)


async def _until_acknowledged(subscription) -> None:
    """Wait until the consumer holds nothing: acks are applied asynchronously."""

    async def nothing_held():
        return (await subscription.backlog()).pending == 0

    await eventually(nothing_held, "every delivery acknowledged", timeout=5)
