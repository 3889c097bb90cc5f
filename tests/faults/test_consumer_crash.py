"""A consumer SIGKILLed mid-stream loses nothing: a replacement finishes its work."""

import asyncio
import time

import pytest
import redis.asyncio as redis
from _processes import finish, handled_numbers, start_consumer

from quantum_core import EventBus, RedisStreamsTransport

EVENTS = 10_000


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
async def test_sigkilled_consumer_loses_nothing(redis_url, redis_prefix, idempotent):
    client = redis.from_url(redis_url)
    child = start_consumer(redis_url, redis_prefix, idempotent=idempotent)
    try:
        async with RedisStreamsTransport(redis_url, prefix=redis_prefix) as publisher_transport:
            publisher = EventBus(publisher_transport, service_name="risk")
            for start in range(0, EVENTS, 500):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 500)]
                )
        while await client.llen(f"{redis_prefix}:handled") < EVENTS // 5:
            await asyncio.sleep(0.01)
        child.kill()  # SIGKILL: no drain, no acknowledgement of what was in flight
        child.wait(timeout=10)
        killed_at = time.monotonic()

        async def handle(payload):
            await client.rpush(f"{redis_prefix}:handled", payload["n"])

        async with RedisStreamsTransport(
            redis_url, prefix=redis_prefix, claim_idle=1.0
        ) as transport:
            replacement = EventBus(transport, service_name="execution", concurrency=32)
            replacement.subscribe("orders", handle, name="handle", idempotent=idempotent)
            async with replacement:
                deadline = time.monotonic() + 60
                while len(set(await handled_numbers(client, redis_prefix))) < EVENTS:
                    assert time.monotonic() < deadline, "the replacement did not finish"
                    await asyncio.sleep(0.05)
                recovery = time.monotonic() - killed_at
                await asyncio.sleep(1.5)  # anything redelivered twice would show up now
                backlog = await replacement.backlog()
                skipped = (await replacement.stats())["orders -> handle"].skipped_duplicates
        numbers = await handled_numbers(client, redis_prefix)
        lost = EVENTS - len(set(numbers))
        duplicates = len(numbers) - len(set(numbers))
        print(
            f"\nconsumer SIGKILL ({'idempotent' if idempotent else 'plain'}): events={EVENTS} "
            f"lost={lost} duplicates={duplicates} recovery={recovery:.1f}s "
            f"skipped_duplicates={skipped}"
        )
        assert lost == 0
        assert set(numbers) == set(range(EVENTS))
        assert backlog["orders -> handle"].pending == 0
        assert duplicates <= 32 + 50  # at most what was in flight or fetched when it died
        if not idempotent:
            assert skipped == 0
    finally:
        finish(child)
        await client.aclose()
