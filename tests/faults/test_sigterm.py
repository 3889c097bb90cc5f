"""SIGTERM during a burst: the consumer drains (bus.stop) and exits; a replacement finishes.

Nothing is lost and, unlike SIGKILL, nothing is handled twice: every handler in flight
finished and was acknowledged before the process exited.
"""

import asyncio
import signal
import time

import redis.asyncio as redis
from _processes import finish, handled_numbers, start_consumer

from quantum_core import EventBus, RedisStreamsTransport

EVENTS = 5000


async def test_sigterm_drains_then_a_replacement_finishes_without_duplicates(
    redis_url, redis_prefix
):
    client = redis.from_url(redis_url)
    children = [start_consumer(redis_url, redis_prefix)]
    try:
        async with RedisStreamsTransport(redis_url, prefix=redis_prefix) as transport:
            publisher = EventBus(transport, service_name="risk")
            for start in range(0, EVENTS, 500):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 500)]
                )
        while await client.llen(f"{redis_prefix}:handled") < EVENTS // 5:
            await asyncio.sleep(0.01)
        first = children[0]
        first.send_signal(signal.SIGTERM)  # mid-burst: handlers in flight, more fetched
        terminated_at = time.monotonic()
        assert await asyncio.to_thread(first.wait, 15) == 0
        assert first.stdout.read().strip() == "stopped"  # it drained, then exited
        handled_by_first = len(await handled_numbers(client, redis_prefix))
        assert handled_by_first < EVENTS  # the burst was really cut in two

        children.append(start_consumer(redis_url, redis_prefix))
        deadline = time.monotonic() + 60
        while len(set(await handled_numbers(client, redis_prefix))) < EVENTS:
            assert time.monotonic() < deadline, "the replacement did not finish"
            await asyncio.sleep(0.05)
        recovery = time.monotonic() - terminated_at
        await asyncio.sleep(1.5)  # anything handled twice would show up now
        numbers = await handled_numbers(client, redis_prefix)
        lost = EVENTS - len(set(numbers))
        duplicates = len(numbers) - len(set(numbers))
        print(
            f"\nconsumer SIGTERM: events={EVENTS} lost={lost} duplicates={duplicates} "
            f"recovery={recovery:.1f}s (first handled {handled_by_first})"
        )
        assert set(numbers) == set(range(EVENTS))
        assert duplicates == 0
    finally:
        for child in children:
            finish(child)
        await client.aclose()
