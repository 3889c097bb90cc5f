"""NATS JetStream: a consumer SIGKILLed mid-stream loses nothing; a replacement finishes.

What the dead process held comes back after ``ack_wait`` (1 s here), to the replacement.
"""

import asyncio
import os
import time
from pathlib import Path

import pytest
from _processes import finish, start_process

from quantum_core import EventBus, NatsJetStreamTransport

EVENTS = 10_000


def handled_numbers(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().split()] if record.exists() else []


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
async def test_sigkilled_nats_consumer_loses_nothing(nats_url, nats_prefix, tmp_path, idempotent):
    record = tmp_path / "handled.txt"
    child = start_process(
        "_nats_consumer.py",
        *(nats_url, nats_prefix, str(record)),
        *(["idempotent"] if idempotent else []),
    )
    try:
        async with NatsJetStreamTransport(nats_url, prefix=nats_prefix) as publisher_transport:
            publisher = EventBus(publisher_transport, service_name="risk")
            for start in range(0, EVENTS, 500):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 500)]
                )
        deadline = time.monotonic() + 60
        while len(handled_numbers(record)) < EVENTS // 5:
            assert time.monotonic() < deadline, "the consumer process handled too little"
            await asyncio.sleep(0.01)
        child.kill()  # SIGKILL: no drain, no acknowledgement of what was in flight
        child.wait(timeout=10)
        killed_at = time.monotonic()
        fd = os.open(record, os.O_WRONLY | os.O_APPEND)

        async def handle(payload):
            os.write(fd, f"{payload['n']}\n".encode())

        async with NatsJetStreamTransport(nats_url, prefix=nats_prefix, ack_wait=1.0) as transport:
            replacement = EventBus(transport, service_name="execution", concurrency=32)
            replacement.subscribe("orders", handle, name="handle", idempotent=idempotent)
            async with replacement:
                deadline = time.monotonic() + 60
                while len(set(handled_numbers(record))) < EVENTS:
                    assert time.monotonic() < deadline, "the replacement did not finish"
                    await asyncio.sleep(0.05)
                recovery = time.monotonic() - killed_at
                await asyncio.sleep(1.5)  # anything redelivered twice would show up now
                backlog = await replacement.backlog()
                skipped = (await replacement.stats())["orders -> handle"].skipped_duplicates
        os.close(fd)
        numbers = handled_numbers(record)
        lost = EVENTS - len(set(numbers))
        duplicates = len(numbers) - len(set(numbers))
        print(
            f"\nnats consumer SIGKILL ({'idempotent' if idempotent else 'plain'}): "
            f"events={EVENTS} lost={lost} duplicates={duplicates} recovery={recovery:.1f}s "
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
