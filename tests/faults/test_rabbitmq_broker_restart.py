"""RabbitMQ restarted under a running consumer and publisher: both go on, nothing is lost.

The broker is a rabbitmq-server of the test's own (``_rabbitmq_server.py``), shut down
cleanly and started again on the same data: durable quorum queues and confirmed
messages survive it, and aio-pika's robust connections reconnect and resume consuming.
"""

import asyncio
import time
from collections import Counter

from _rabbitmq_server import RabbitMQServer

from quantum_core import EventBus
from quantum_core.errors import TransportError
from quantum_core.transports.rabbitmq import RabbitMQTransport

BEFORE, DURING, AFTER = 200, 300, 200


async def test_consumer_goes_on_after_a_broker_restart():
    server = RabbitMQServer()
    server.start()
    handled: Counter[int] = Counter()

    async def handle(payload):
        handled[payload["n"]] += 1

    async def all_handled(count, timeout):
        deadline = time.monotonic() + timeout
        while len(handled) < count:
            assert time.monotonic() < deadline, f"{len(handled)} of {count} handled"
            await asyncio.sleep(0.05)

    try:
        consumer_transport = RabbitMQTransport(server.url, prefix="restart")
        publisher_transport = RabbitMQTransport(server.url, prefix="restart")
        consumer = EventBus(consumer_transport, service_name="execution", concurrency=8)
        consumer.subscribe("orders", handle, name="handle")
        publisher = EventBus(publisher_transport, service_name="risk")
        await consumer.start()
        await publisher.publish_many("orders", [{"n": n} for n in range(BEFORE)])
        await all_handled(BEFORE, 30)
        # Confirmed, then the broker goes away with some still queued.
        await publisher.publish_many("orders", [{"n": n} for n in range(BEFORE, BEFORE + DURING)])
        await asyncio.to_thread(server.stop)
        stopped_at = time.monotonic()
        await asyncio.to_thread(server.start)
        restarted_at = time.monotonic()

        batch = [{"n": n} for n in range(BEFORE + DURING, BEFORE + DURING + AFTER)]
        deadline = time.monotonic() + 60
        while True:  # the publisher reconnects on its own; until then publish fails loudly
            try:
                await publisher.publish_many("orders", batch)
                break
            except TransportError:
                assert time.monotonic() < deadline, "the publisher did not reconnect"
                await asyncio.sleep(0.5)
        await all_handled(BEFORE + DURING + AFTER, 60)
        recovered_at = time.monotonic()
        await asyncio.sleep(1.0)
        lost = BEFORE + DURING + AFTER - len(handled)
        duplicates = sum(handled.values()) - len(handled)
        print(
            f"\nrabbitmq broker restart: events={BEFORE + DURING + AFTER} lost={lost} "
            f"duplicates={duplicates} broker down {restarted_at - stopped_at:.1f}s, all handled "
            f"{recovered_at - restarted_at:.1f}s after it came back"
        )
        assert lost == 0
        assert set(handled) == set(range(BEFORE + DURING + AFTER))
        await consumer.stop()
        await publisher.stop()
        await consumer_transport.close()
        await publisher_transport.close()
    finally:
        await asyncio.to_thread(server.remove)
