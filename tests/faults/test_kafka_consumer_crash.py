"""Kafka: a consumer SIGKILLed mid-stream, with a replica running, loses nothing.

The dead replica's partitions go to the live one once the group's session timeout (2 s
here) expires; it reads on from the last commit, so what the dead one had in flight is
handled again (counted as duplicates), and nothing is lost.
"""

import asyncio
import os
import time
from pathlib import Path

from _processes import finish, start_process

from quantum_core import EventBus

EVENTS = 5_000


def handled_numbers(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().split()] if record.exists() else []


async def test_sigkilled_kafka_consumer_loses_nothing(kafka_url, kafka_prefix, tmp_path):
    url = f"{kafka_url}?prefix={kafka_prefix}&session_timeout=2&partitions=4"
    record = tmp_path / "handled.txt"
    record.touch()
    fd = os.open(record, os.O_WRONLY | os.O_APPEND)

    async def handle(payload):
        await asyncio.sleep(0.001)
        os.write(fd, f"{payload['n']}\n".encode())

    replica = EventBus(url, service_name="execution", concurrency=32, read_count=50)
    replica.subscribe("orders", handle, name="handle")
    await replica.start()
    child = start_process("_kafka_consumer.py", url, str(record))  # joins: a rebalance
    try:
        async with EventBus(url, service_name="risk") as publisher:
            for start in range(0, EVENTS, 500):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 500)]
                )
        deadline = time.monotonic() + 60
        while len(handled_numbers(record)) < EVENTS // 5:
            assert time.monotonic() < deadline, "too little handled"
            await asyncio.sleep(0.01)
        child.kill()  # SIGKILL: no commit, no leaving the group
        child.wait(timeout=10)
        killed_at = time.monotonic()
        deadline = time.monotonic() + 60
        while len(set(handled_numbers(record))) < EVENTS:
            assert time.monotonic() < deadline, "the live replica did not finish"
            await asyncio.sleep(0.05)
        recovery = time.monotonic() - killed_at
        await asyncio.sleep(1.0)  # anything delivered twice more would show up now
        backlog = (await replica.backlog())["orders -> handle"]
    finally:
        await replica.stop()
        os.close(fd)
        finish(child)
    numbers = handled_numbers(record)
    lost = EVENTS - len(set(numbers))
    duplicates = len(numbers) - len(set(numbers))
    print(
        f"\nkafka consumer SIGKILL: events={EVENTS} lost={lost} duplicates={duplicates} "
        f"recovery={recovery:.1f}s"
    )
    assert lost == 0
    assert set(numbers) == set(range(EVENTS))
    assert backlog.pending == 0
