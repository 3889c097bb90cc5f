"""subscribe(..., idempotent=True): a completed handler is not run again for a redelivery.

The crash between the handler and the ack is simulated by an ack that fails (the event
stays pending), then a stop() that hands it back to the group; a second bus of the same
group and consumer name receives it again, as a restarted process would.
"""

import asyncio

import pytest

from quantum_core import EventBus, MemoryTransport, RedisStreamsTransport
from quantum_core.bus import Delivery, Subscription, Transport
from quantum_core.errors import TransportError
from quantum_core.testing import eventually


@pytest.fixture(params=["memory", "redis"])
def make_transport(request):
    if request.param == "memory":
        shared = MemoryTransport()
        return lambda: shared
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisStreamsTransport(url, prefix=prefix, claim_idle=1.0)


async def _crash_after_handler_then_redeliver(make_transport, *, idempotent):
    """Handle one event whose ack is lost, then restart; return the handler's run count."""
    runs = []

    async def handle(payload):
        runs.append(payload["n"])

    ack_tried = asyncio.Event()

    async def lost_ack(deliveries):
        ack_tried.set()
        raise TransportError("connection reset before XACK (simulated crash)")

    first_transport = make_transport()
    first = EventBus(first_transport, service_name="svc", consumer_name="worker-1")
    first.subscribe("t.x", handle, name="h", idempotent=idempotent)
    await first.start()
    first._consumers[0].subscription.ack = lost_ack
    await first.publish("t.x", {"n": 1})
    await eventually(lambda: runs == [1])
    await asyncio.wait_for(ack_tried.wait(), 10)  # after the record, if the group keeps them
    assert (await first.stats())["t.x -> h"].pending == 1  # handled, not acknowledged
    await first.stop()

    second_transport = make_transport()
    second = EventBus(second_transport, service_name="svc", consumer_name="worker-1")
    second.subscribe("t.x", handle, name="h", idempotent=idempotent)
    async with second:
        await eventually(lambda: second._consumers[0].counters.skipped_duplicates + len(runs) > 1)

        async def acknowledged():
            return (await second.stats())["t.x -> h"].pending == 0

        await eventually(acknowledged, "the redelivered event acknowledged")
        stats = (await second.stats())["t.x -> h"]
    for transport in {id(t): t for t in (first_transport, second_transport)}.values():
        await transport.close()
    assert stats.pending == 0  # acknowledged either way
    return len(runs), stats.skipped_duplicates


async def test_an_idempotent_handler_is_not_run_again_after_a_lost_ack(make_transport, log_lines):
    runs, skipped = await _crash_after_handler_then_redeliver(make_transport, idempotent=True)
    assert (runs, skipped) == (1, 1)
    skips = log_lines.named("event_duplicate_skipped")
    assert len(skips) == 1
    assert skips[0]["attempt"] == 2


async def test_without_idempotent_the_handler_runs_again_after_a_lost_ack(make_transport):
    runs, skipped = await _crash_after_handler_then_redeliver(make_transport, idempotent=False)
    assert (runs, skipped) == (2, 0)


async def test_records_are_per_group(make_transport):
    """Another service's group handles the same event id: records never cross groups."""
    seen = {"a": 0, "b": 0}

    def handler(name):
        async def handle(payload):
            seen[name] += 1

        return handle

    buses = [EventBus(make_transport(), service_name=name) for name in ("a", "b")]
    for bus, name in zip(buses, ("a", "b"), strict=True):
        bus.subscribe("t.x", handler(name), name="h", idempotent=True)
        await bus.start()
    try:
        await buses[0].publish("t.x", {"n": 1})
        await eventually(lambda: seen == {"a": 1, "b": 1})
    finally:
        for bus in buses:
            await bus.stop()
            await bus.transport.close()


async def test_a_record_expires_after_its_ttl():
    transport = MemoryTransport()
    subscription = await transport.subscribe("t.x", group="g", consumer="c")
    await subscription.mark_handled(["e1"], ttl=0.05)
    assert await subscription.was_handled("e1")
    assert not await subscription.was_handled("e2")
    await asyncio.sleep(0.06)
    assert not await subscription.was_handled("e1")
    await subscription.mark_handled(["e2"], ttl=10)  # forgets e1 for good
    other = await transport.subscribe("t.x", group="other", consumer="c")
    assert not await other.was_handled("e2")  # per group


async def test_a_redis_record_expires_after_its_ttl(redis_url, redis_prefix):
    async with RedisStreamsTransport(redis_url, prefix=redis_prefix) as transport:
        subscription = await transport.subscribe("t.x", group="g", consumer="c")
        await subscription.mark_handled(["e1", "e2"], ttl=0.2)
        assert await subscription.was_handled("e1")
        assert await subscription.was_handled("e2")
        other = await transport.subscribe("t.x", group="other", consumer="c")
        assert not await other.was_handled("e1")
        await asyncio.sleep(0.3)
        assert not await subscription.was_handled("e1")
        await subscription.close()
        await other.close()


async def test_a_failing_record_check_is_a_failed_attempt(log_lines):
    runs = []

    async def handle(payload):
        runs.append(payload)

    bus = EventBus("memory://", service_name="svc", retry_backoff=0.001)
    bus.subscribe("t.x", handle, name="h", idempotent=True)
    calls = 0
    async with bus:
        subscription = bus._consumers[0].subscription
        real = subscription.was_handled

        async def flaky(event_id):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise TransportError("record store down")
            return await real(event_id)

        subscription.was_handled = flaky
        await bus.publish("t.x", {"n": 1})
        await eventually(lambda: len(runs) == 1)
        await asyncio.sleep(0.05)
        stats = (await bus.stats())["t.x -> h"]
    assert (stats.failed, stats.retried, stats.handled, calls) == (1, 1, 1, 2)


class _NoRecords(Transport):
    def __init__(self):
        self.closed = 0

    async def publish(self, topic, messages):
        pass

    async def subscribe(self, topic, *, group, consumer, from_beginning=False):
        transport = self

        class Plain(Subscription):
            async def fetch(self, max_count, timeout):
                await asyncio.sleep(timeout)
                return []

            async def ack(self, deliveries: list[Delivery]):
                pass

            async def dead_letter(self, delivery, record):
                pass

            async def close(self):
                transport.closed += 1

        return Plain()


async def test_a_transport_without_records_is_refused_at_start():
    transport = _NoRecords()
    bus = EventBus(transport, service_name="svc")

    async def handle(payload):
        pass

    bus.subscribe("t.x", handle, name="plain")
    bus.subscribe("t.x", handle, name="once", idempotent=True)
    with pytest.raises(NotImplementedError, match="keeps no handled-records"):
        await bus.start()
    assert transport.closed == 2
    assert not bus.is_running


def test_idempotency_ttl_is_checked():
    bus = EventBus("memory://", service_name="svc")

    async def handle(payload):
        pass

    with pytest.raises(ValueError, match="idempotency_ttl"):
        bus.subscribe("t.x", handle, idempotent=True, idempotency_ttl=0)
