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
        warnings = log_lines.named("consumer_group_recreated")
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


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(log_lines):
    server = RedisServer()
    server.start()
    try:
        async with (
            RedisStreamsTransport(server.url, prefix="outage") as consumer_transport,
            RedisStreamsTransport(server.url, prefix="outage") as publisher_transport,
        ):
            recorder = EventRecorder()
            bus = EventBus(consumer_transport, service_name="exec")
            bus.subscribe("orders", recorder, name="orders")
            publisher = EventBus(publisher_transport, service_name="risk")
            async with bus:
                await publisher.publish("orders", {"n": 1})
                await recorder.wait_for(1)
                server.stop()
                await asyncio.sleep(2.0)  # the consumer meets a two-second outage
                server.start()
                for n in range(2, 20):
                    await publisher.publish("orders", {"n": n})
                await recorder.wait_for(19, timeout=20)
        assert sorted(p["n"] for p in recorder.payloads) == list(range(1, 20))
        events = [line["event"] for line in log_lines()]
        counts = {
            name: events.count(name)
            for name in ("event_fetch_failed", "transport_recovered", "consumer_group_recreated")
        }
        assert counts == {
            "event_fetch_failed": 1,
            "transport_recovered": 1,
            "consumer_group_recreated": 1,
        }, events
        failed = log_lines.named("event_fetch_failed")[0]
        assert failed["level"] == "warning"
        assert failed["retry_max"] == 5.0
        recovered = log_lines.named("transport_recovered")[0]
        assert recovered["level"] == "info"
        assert recovered["outage_seconds"] >= 1.5
        assert events.count("event_fetch_still_failing") <= 10  # backoff, not a tight loop
    finally:
        server.stop()
