"""A soak: many events through three consumer processes, one SIGKILLed at random moments.

Each kill loses what that process had fetched and not acknowledged; the group's other
consumers claim it (``claim_idle`` = 1 s) and handle it again, so duplicates are expected
and counted, losses are not. ``QUANTUM_SOAK_EVENTS`` sets the size (default 200,000: about
30 s on a 2-core machine; 100,000 takes about 15 s).
"""

import asyncio
import os
import random
import signal
import time

import redis.asyncio as redis
from _processes import finish, handled_numbers, start_consumer

from quantum_core import EventBus, RedisStreamsTransport

EVENTS = int(os.environ.get("QUANTUM_SOAK_EVENTS", "200000"))
CONSUMERS = 3
BATCH = 1000


async def test_soak_with_random_sigkills_loses_nothing(redis_url, redis_prefix):
    client = redis.from_url(redis_url)
    children = [
        await asyncio.to_thread(start_consumer, redis_url, redis_prefix) for _ in range(CONSUMERS)
    ]
    retired = []
    kills = 0
    last_kill = [time.monotonic()]
    done = asyncio.Event()

    async def kill_at_random_moments():
        nonlocal kills
        while not done.is_set():
            await asyncio.sleep(random.uniform(1.0, 4.0))
            if done.is_set():
                return
            victim = children.pop(random.randrange(len(children)))
            victim.kill()  # SIGKILL: no drain, no acknowledgement of what it held
            await asyncio.to_thread(victim.wait, 10)
            retired.append(victim)
            kills += 1
            last_kill[0] = time.monotonic()
            children.append(await asyncio.to_thread(start_consumer, redis_url, redis_prefix))

    started = time.monotonic()
    killer = asyncio.create_task(kill_at_random_moments())
    try:
        async with RedisStreamsTransport(redis_url, prefix=redis_prefix) as transport:
            publisher = EventBus(transport, service_name="risk")
            for start in range(0, EVENTS, BATCH):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, min(start + BATCH, EVENTS))]
                )
                await asyncio.sleep(0.01)  # a steady stream, not one burst
        published = time.monotonic() - started
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline, "the consumers did not finish"
            if (
                await client.llen(f"{redis_prefix}:handled") >= EVENTS
                and len(set(await handled_numbers(client, redis_prefix))) == EVENTS
            ):
                break
            await asyncio.sleep(0.25)
        finished = time.monotonic()
        elapsed = finished - started
        done.set()
        await killer
        await asyncio.sleep(1.5)  # redeliveries still under way would show up now
        numbers = await handled_numbers(client, redis_prefix)
        lost = EVENTS - len(set(numbers))
        duplicates = len(numbers) - len(set(numbers))
        print(
            f"\nsoak: events={EVENTS} lost={lost} duplicates={duplicates} "
            f"recovery={finished - last_kill[0]:.1f}s (last kill to all handled) kills={kills} "
            f"consumers={CONSUMERS} published_in={published:.1f}s total={elapsed:.1f}s "
            f"({EVENTS / elapsed:,.0f} events/s)"
        )
        assert set(numbers) == set(range(EVENTS))
        assert kills >= 1
    finally:
        done.set()
        killer.cancel()
        await asyncio.gather(killer, return_exceptions=True)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children + retired:
            try:
                await asyncio.to_thread(child.wait, 15)
            finally:
                finish(child)
        await client.aclose()
