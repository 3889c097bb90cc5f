"""Kafka: replicas joining and leaving under load (rebalances) lose nothing.

A partition that moves is let go only after its records in flight finished (within
``revoke_wait``) and were committed, so a rebalance should cost few duplicates; they are
counted and reported, and none is lost.
"""

import asyncio
import time
from collections import Counter

from quantum_core import EventBus

EVENTS = 4_000


async def test_replicas_joining_and_leaving_under_load_lose_nothing(kafka_url, kafka_prefix):
    url = f"{kafka_url}?prefix={kafka_prefix}&session_timeout=2&partitions=4"
    handled: list[tuple[str, int]] = []

    def replica(name: str) -> EventBus:
        async def handle(payload):
            await asyncio.sleep(0.002)
            handled.append((name, payload["n"]))

        bus = EventBus(url, service_name="execution", concurrency=16, read_count=50)
        bus.subscribe("orders", handle, name="handle")
        return bus

    async def publish_all() -> None:
        async with EventBus(url, service_name="risk") as publisher:
            for start in range(0, EVENTS, 100):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 100)]
                )
                await asyncio.sleep(0.2)  # 100 events every 0.2 s: load for 8 s

    async def until(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(handled) < count:
            assert time.monotonic() < deadline, f"{len(handled)} handled, waiting for {count}"
            await asyncio.sleep(0.01)

    first, second, third = replica("first"), replica("second"), replica("third")
    await first.start()
    publishing = asyncio.create_task(publish_all())
    try:
        await until(500)
        await second.start()  # joins under load
        await until(1_500)
        await third.start()
        await until(2_500)
        await second.stop()  # leaves under load
        await publishing
        deadline = time.monotonic() + 60
        while len({n for _, n in handled}) < EVENTS:
            assert time.monotonic() < deadline, "not every event was handled"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a late duplicate would show up now
    finally:
        publishing.cancel()
        for bus in (first, second, third):
            await bus.stop()
    numbers = Counter(n for _, n in handled)
    lost = EVENTS - len(numbers)
    duplicates = sum(numbers.values()) - len(numbers)
    by_replica = Counter(name for name, _ in handled)
    print(
        f"\nkafka rebalances under load: events={EVENTS} lost={lost} duplicates={duplicates} "
        f"handled by {dict(by_replica)}"
    )
    assert lost == 0
    assert set(numbers) == set(range(EVENTS))
    assert len(by_replica) == 3, f"a replica got no partition: {dict(by_replica)}"
