"""Kafka: a broker restarted under a running consumer; the consumer goes on, without spinning.

The broker is a Tansu of the test's own, in memory: it comes back empty (no topics, no
groups), as a new cluster would. The consumer rejoins its group and reads what is
published once it is back; while the broker is down it retries at a measured pace, not in
a tight loop (the process's CPU time over the outage is the measure).
"""

import asyncio
import contextlib
import time

from quantum_core import EventBus, TransportError

OUTAGE = 3.0


async def test_a_consumer_goes_on_after_the_broker_restarts(tansu):
    url = f"{tansu.url}?prefix=restart&session_timeout=2&request_timeout=3"
    handled: list[int] = []

    async def handle(payload):
        handled.append(payload["n"])

    consumer = EventBus(url, service_name="execution")
    consumer.subscribe("orders", handle, name="handle")
    publisher = EventBus(url, service_name="risk")
    async with consumer, publisher:
        await publisher.publish_many("orders", [{"n": n} for n in range(10)])
        deadline = time.monotonic() + 10
        while len(handled) < 10:
            assert time.monotonic() < deadline, "nothing handled before the restart"
            await asyncio.sleep(0.01)

        tansu.stop()
        cpu_before, wall_before = time.process_time(), time.monotonic()
        await asyncio.sleep(OUTAGE)
        cpu = time.process_time() - cpu_before
        wall = time.monotonic() - wall_before
        tansu.start()

        # Probe until an event published now is handled: the consumer is back.
        back_at = None
        deadline = time.monotonic() + 45
        probe = 1_000
        while back_at is None:
            assert time.monotonic() < deadline, "the consumer did not come back"
            with contextlib.suppress(TransportError):  # the publisher finds the broker again
                await publisher.publish("orders", {"n": probe})
            await asyncio.sleep(0.5)
            if any(n >= 1_000 for n in handled):
                back_at = time.monotonic()
            probe += 1
        await publisher.publish_many("orders", [{"n": n} for n in range(100, 150)])
        deadline = time.monotonic() + 15
        while not set(range(100, 150)) <= set(handled):
            assert time.monotonic() < deadline, "events published after the restart were lost"
            await asyncio.sleep(0.02)
    print(
        f"\nkafka broker restart: outage={OUTAGE}s cpu_during_outage={cpu:.2f}s "
        f"({cpu / wall:.0%} of one core)"
    )
    assert cpu / wall < 0.25, "the consumer spun while the broker was down"
