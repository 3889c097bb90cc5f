"""A Redis that forgets everything (FLUSHALL, or a restart without persistence) under a bus."""

import asyncio
import sys
from pathlib import Path

import redis.asyncio as redis

from quantum_core import EventBus, RedisStreamsTransport
from quantum_core.testing import EventRecorder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from _services import RedisServer  # the integration tests' own helper


async def test_a_flushed_server_is_met_by_recreating_and_going_on(log_lines):
    server = RedisServer()
    server.start()
    client = redis.from_url(server.url)
    try:
        async with (
            RedisStreamsTransport(server.url, prefix="flush") as consumer_transport,
            RedisStreamsTransport(server.url, prefix="flush") as publisher_transport,
        ):
            recorder = EventRecorder()
            bus = EventBus(consumer_transport, service_name="exec")
            bus.subscribe("orders", recorder)
            publisher = EventBus(publisher_transport, service_name="risk")
            async with bus:
                await publisher.publish("orders", {"n": 1})
                await recorder.wait_for(1)
                await client.flushall()
                await publisher.publish("orders", {"n": 2})  # into a stream with no group
                await publisher.publish("orders", {"n": 3})
                await recorder.wait_for(3, timeout=10)
                for n in range(4, 50):
                    await publisher.publish("orders", {"n": n})
                await recorder.wait_for(49, timeout=10)
        assert sorted(p["n"] for p in recorder.payloads) == list(range(1, 50))
        warnings = [line for line in log_lines() if line["event"] == "consumer_group_recreated"]
        assert len(warnings) == 1  # said once, not in a loop
    finally:
        await client.aclose()
        server.stop()


async def test_a_restarted_empty_server_is_met_by_recreating_and_going_on():
    server = RedisServer()
    server.start()
    try:
        async with (
            RedisStreamsTransport(server.url, prefix="restart") as consumer_transport,
            RedisStreamsTransport(server.url, prefix="restart") as publisher_transport,
        ):
            recorder = EventRecorder()
            bus = EventBus(consumer_transport, service_name="exec")
            bus.subscribe("orders", recorder)
            publisher = EventBus(publisher_transport, service_name="risk")
            async with bus:
                await publisher.publish("orders", {"n": 1})
                await recorder.wait_for(1)
                server.stop()
                await asyncio.sleep(1.0)  # the consumer meets the outage
                server.start()
                for n in range(2, 20):
                    await publisher.publish("orders", {"n": n})
                await recorder.wait_for(19, timeout=20)
        assert sorted(p["n"] for p in recorder.payloads) == list(range(1, 20))
    finally:
        server.stop()
