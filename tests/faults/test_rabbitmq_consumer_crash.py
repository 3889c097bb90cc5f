"""RabbitMQ: a consumer SIGKILLed mid-stream loses nothing; a replacement finishes its work.

RabbitMQ requeues what the dead connection held unacknowledged, at once; the quorum
queue counts the return, so the replacement sees those events as a second attempt.
"""

import asyncio
import time

import redis.asyncio as redis
from _processes import finish, handled_numbers, start_process

from quantum_core import EventBus
from quantum_core.transports.rabbitmq import RabbitMQTransport
from quantum_core.transports.rabbitmq.names import group_queue, history_stream

EVENTS = 5_000


async def test_sigkilled_rabbitmq_consumer_loses_nothing(
    amqp_url, rabbitmq_prefix, rabbitmq_declared, redis_url
):
    prefix = rabbitmq_prefix
    rabbitmq_declared.update(
        {group_queue(prefix, "orders", "execution:handle"), history_stream(prefix, "orders")}
    )
    client = redis.from_url(redis_url)
    child = start_process("_rabbitmq_consumer.py", amqp_url, prefix, redis_url)
    try:
        async with RabbitMQTransport(amqp_url, prefix=prefix) as publisher_transport:
            publisher = EventBus(publisher_transport, service_name="risk")
            for start in range(0, EVENTS, 500):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 500)]
                )
                if start == 0:
                    while await client.llen(f"{prefix}:handled") < 100:
                        await asyncio.sleep(0.01)
            while await client.llen(f"{prefix}:handled") < EVENTS // 5:
                await asyncio.sleep(0.01)
            child.kill()  # SIGKILL: no drain, no acknowledgement of what was in flight
            child.wait(timeout=10)
            killed_at = time.monotonic()

        async def handle(payload):
            await client.rpush(f"{prefix}:handled", payload["n"])

        async with RabbitMQTransport(amqp_url, prefix=prefix) as transport:
            replacement = EventBus(transport, service_name="execution", concurrency=32)
            replacement.subscribe("orders", handle, name="handle")
            async with replacement:
                deadline = time.monotonic() + 90
                while len(set(await handled_numbers(client, prefix))) < EVENTS:
                    assert time.monotonic() < deadline, "the replacement did not finish"
                    await asyncio.sleep(0.05)
                recovery = time.monotonic() - killed_at
                await asyncio.sleep(1.5)  # anything delivered twice more would show up now
                backlog = (await replacement.backlog())["orders -> handle"]
        numbers = await handled_numbers(client, prefix)
        lost = EVENTS - len(set(numbers))
        duplicates = len(numbers) - len(set(numbers))
        print(
            f"\nrabbitmq consumer SIGKILL: events={EVENTS} lost={lost} duplicates={duplicates} "
            f"recovery={recovery:.1f}s"
        )
        assert lost == 0
        assert set(numbers) == set(range(EVENTS))
        assert (backlog.pending, backlog.lag) == (0, 0)
        # At most what it held: handlers in flight and its prefetch windows.
        assert duplicates <= 32 + 2 * 4 * 50
    finally:
        finish(child)
        await client.delete(f"{prefix}:handled")
        await client.aclose()
