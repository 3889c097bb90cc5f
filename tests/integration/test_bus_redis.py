"""The EventBus on the real Redis: the guide's constructor, layout, recovery, bad data, outages."""

import asyncio
import os

import pytest
import redis.asyncio as redis

from quantum_core import (
    EventBus,
    RedisStreamsTransport,
    TransportError,
    get_event_bus,
    initialize_event_bus,
    trace_context,
)
from quantum_core.testing import EventRecorder, eventually


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode_responses", [False, True])
async def test_guide_constructor_with_every_kind_of_client(
    redis_url, redis_prefix, protocol, decode_responses
):
    client = redis.from_url(redis_url, decode_responses=decode_responses, protocol=protocol)
    try:
        transport = RedisStreamsTransport(client, prefix=redis_prefix)
        bus = EventBus(transport, service_name="test")
        recorder = EventRecorder()
        bus.subscribe("ai.signal.generated", recorder)
        async with bus:
            trace_id = trace_context.generate()
            payload = {"symbol": "BTCUSDT", "confidence": 0.85, "text": "ü€", "big": 2**70}
            await bus.publish("ai.signal.generated", payload, trace_id=trace_id)
            await recorder.wait_for(1)
        assert recorder.payloads == [payload]
        assert recorder.traces == [trace_id]
        await transport.close()
        assert await client.ping()  # the user's client is untouched and still open
    finally:
        await client.aclose()


async def test_event_bus_takes_a_redis_client_directly_as_in_the_guide(client, redis_url):
    """EventBus(redis_client, service_name=...) uses the default prefix, as the guide does."""
    service = f"guide-{os.urandom(3).hex()}"
    try:
        event_bus = EventBus(client, service_name=service)
        await event_bus.initialize()
        received_events = []

        async def capture_event(data):
            received_events.append(data)

        event_bus.subscribe("ai.signal.generated", capture_event)
        await event_bus.start()
        await event_bus.publish("ai.signal.generated", {"symbol": "BTCUSDT", "confidence": 0.85})
        await eventually(lambda: received_events, "the event handled")
        assert received_events == [{"symbol": "BTCUSDT", "confidence": 0.85}]
        await event_bus.stop()
        assert await client.ping()
    finally:
        stream = "quantum_core:stream:ai.signal.generated"
        for group in await client.xinfo_groups(stream):
            if group["name"].decode().startswith(service):
                await client.xgroup_destroy(stream, group["name"])


async def test_initialize_event_bus_accepts_a_redis_client(client):
    bus = await initialize_event_bus(client, service_name="svc")
    assert isinstance(bus.transport, RedisStreamsTransport)
    assert get_event_bus() is bus


async def test_urls_select_the_redis_transport_with_options_in_the_query(redis_url, redis_prefix):
    bus = EventBus(f"{redis_url}?prefix={redis_prefix}&claim_idle=5", service_name="svc")
    assert isinstance(bus.transport, RedisStreamsTransport)
    assert bus.transport.prefix == redis_prefix
    await bus.ping()
    await bus.stop()
    expected = r"Redis URL option claim_idle='soon' is not valid: expected a number of seconds > 0"
    with pytest.raises(ValueError, match=expected):
        EventBus(f"{redis_url}?claim_idle=soon", service_name="svc")


async def test_layout_on_the_server_and_nothing_left_pending(client, redis_prefix, transports):
    transport = transports()
    bus = EventBus(transport, service_name="risk")
    first, second = EventRecorder(), EventRecorder()
    bus.subscribe("ai.signal.generated", first, name="governor")
    bus.subscribe("ai.signal.generated", second, name="audit")
    async with bus:
        await bus.publish_many("ai.signal.generated", [{"n": n} for n in range(50)])
        await transport.publish("ai.signal.generated", [b"not an envelope"])
        await first.wait_for(50)
        await second.wait_for(50)

        async def settled():  # acknowledgements and dead letters are written after handling
            groups = await client.xinfo_groups(f"{redis_prefix}:stream:ai.signal.generated")
            dead = await client.xlen(f"{redis_prefix}:dead:ai.signal.generated")
            return dead == 2 and all(g["pending"] == 0 for g in groups)

        await eventually(settled, "every entry acknowledged, the bad one dead-lettered twice")
        groups = await client.xinfo_groups(f"{redis_prefix}:stream:ai.signal.generated")
        consumers = await client.xinfo_consumers(
            f"{redis_prefix}:stream:ai.signal.generated", "risk:governor"
        )
    assert sorted(g["name"] for g in groups) == [b"risk:audit", b"risk:governor"]
    assert all(g["pending"] == 0 and g["lag"] == 0 for g in groups)
    assert [c["name"].decode() for c in consumers] == [bus.consumer_name]
    keys = sorted([k.decode() async for k in client.scan_iter(match=f"{redis_prefix}:*")])
    assert keys == [
        f"{redis_prefix}:dead:ai.signal.generated",
        f"{redis_prefix}:stream:ai.signal.generated",
    ]
    assert await client.xlen(f"{redis_prefix}:dead:ai.signal.generated") == 2  # one per group


async def test_entries_written_by_other_programs_are_set_aside(client, redis_prefix, transports):
    stream = f"{redis_prefix}:stream:orders"
    bus = EventBus(transports(), service_name="exec")
    recorder = EventRecorder()
    bus.subscribe("orders", recorder)
    async with bus:
        await client.xadd(stream, {"foo": "bar"})
        await client.xadd(stream, {"event": b"\xff\xfe"})
        await client.xadd(stream, {"event": '{"v": 2, "id": "from-the-future"}'})
        await bus.publish("orders", {"ok": 1})
        await recorder.wait_for(1)

        async def settled():
            (group,) = await client.xinfo_groups(stream)
            return group["pending"] == 0 and await client.xlen(f"{redis_prefix}:dead:orders") == 3

        await eventually(settled, "the good entry acknowledged, the three others set aside")
        (group,) = await client.xinfo_groups(stream)
    assert recorder.payloads == [{"ok": 1}]
    assert group["pending"] == 0
    dead = await client.xrange(f"{redis_prefix}:dead:orders")
    assert len(dead) == 3
    assert any(b"unsupported envelope version 2" in fields[b"record"] for _, fields in dead)


async def test_retention_is_bounded(client, redis_prefix, transports):
    transport = transports(maxlen=100)
    bus = EventBus(transport, service_name="pub")
    for _ in range(10):
        await bus.publish_many("ticks", [{"n": n} for n in range(100)])
    length = await client.xlen(f"{redis_prefix}:stream:ticks")
    assert 100 <= length < 1000  # approximate trimming keeps at least maxlen
    await bus.stop()


async def test_a_consumer_name_finishes_its_own_pending_first(client, redis_prefix, transports):
    """A process that restarts under the same consumer name takes back what it held."""
    stream = f"{redis_prefix}:stream:orders"
    publisher = EventBus(transports(), service_name="p")
    started = asyncio.Event()

    async def hang(payload):
        started.set()
        await asyncio.Event().wait()

    first = EventBus(
        transports(claim_idle=600),
        service_name="exec",
        consumer_name="pod-0",
        stop_timeout=0,
    )
    first.subscribe("orders", hang, name="handle")
    await first.start()
    await publisher.publish("orders", {"order": 7})
    await asyncio.wait_for(started.wait(), 5)
    await first.stop()
    pending = await client.xpending(stream, "exec:handle")
    assert pending["pending"] == 1

    recorder = EventRecorder()
    again = EventBus(
        transports(claim_idle=600),
        service_name="exec",
        consumer_name="pod-0",
    )
    again.subscribe("orders", recorder, name="handle")
    async with again:
        await recorder.wait_for(1)  # long before claim_idle: it was its own
    assert recorder.payloads == [{"order": 7}]
    assert recorder.events[0].attempt == 2
    await publisher.stop()


async def test_a_slow_handler_is_never_robbed_by_a_live_replica(redis_prefix, transports):
    """Entries in flight are kept fresh, so a replica never claims work that is merely slow."""
    handled: list[str] = []

    def replica(name):
        async def slow(payload):
            handled.append(name)
            await asyncio.sleep(2.5)  # far longer than claim_idle

        bus = EventBus(
            transports(claim_idle=0.6),
            service_name="exec",
            concurrency=1,
            read_count=1,
        )
        bus.subscribe("orders", slow, name="handle")
        return bus

    a, b = replica("a"), replica("b")
    async with a, b:
        await EventBus(transports(), service_name="p").publish("orders", {"order": 1})
        await asyncio.sleep(3.5)
    assert len(handled) == 1


async def test_a_deleted_stream_and_group_are_recreated_and_nothing_is_skipped(
    client, redis_prefix, transports
):
    stream = f"{redis_prefix}:stream:orders"
    recorder = EventRecorder()
    bus = EventBus(transports(), service_name="exec")
    bus.subscribe("orders", recorder)
    publisher = EventBus(transports(), service_name="p")
    async with bus, publisher:
        await publisher.publish("orders", {"n": 1})
        await recorder.wait_for(1)
        await client.delete(stream)  # someone deleted it; the group went with it
        await publisher.publish("orders", {"n": 2})  # published before the consumer noticed
        await publisher.publish("orders", {"n": 3})
        await recorder.wait_for(3, timeout=10)
    assert sorted(p["n"] for p in recorder.payloads) == [1, 2, 3]


async def test_publish_to_an_unreachable_redis_fails_clearly_and_quickly():
    from service_helpers import free_port

    port = free_port()
    bus = EventBus(f"redis://127.0.0.1:{port}/0", service_name="p")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransportError, match=r"could not publish to Redis stream"):
        await bus.publish("orders", {"n": 1})
    with pytest.raises(TransportError):
        await bus.publish_many("orders", [{"n": 1}, {"n": 2}])
    assert loop.time() - started < 15
    with pytest.raises(TransportError, match="PING"):
        await bus.ping()
    await bus.stop()


def test_transport_options_are_checked():
    with pytest.raises(ValueError, match="claim_idle must be a number of seconds > 0"):
        RedisStreamsTransport("redis://localhost", claim_idle=0)
    with pytest.raises(ValueError, match="maxlen must be a whole number >= 1"):
        RedisStreamsTransport("redis://localhost", maxlen=0)
    with pytest.raises(ValueError, match="prefix must be"):
        RedisStreamsTransport("redis://localhost", prefix="has space")
    with pytest.raises(TypeError, match=r"redis.asyncio.Redis client or a redis:// URL"):
        RedisStreamsTransport(42)


async def test_handler_log_lines_carry_the_event_trace_on_redis(transports, log_lines):
    from quantum_core import get_logger

    log = get_logger("test.redis.handler", domain="risk_safety")

    async def handler(payload):
        log.info("handled_on_redis", n=payload["n"])

    bus = EventBus(transports(), service_name="svc")
    bus.subscribe("signals", handler)
    async with bus:
        await bus.publish("signals", {"n": 1}, trace_id="trace-one")
        with trace_context.scope("trace-two"):
            await bus.publish("signals", {"n": 2})
        await eventually(lambda: len(log_lines.named("handled_on_redis")) == 2)
    lines = log_lines.named("handled_on_redis")
    assert {line["n"]: line["trace_id"] for line in lines} == {1: "trace-one", 2: "trace-two"}
    assert all(line["domain"] == "risk_safety" for line in lines)
