"""Setting an event aside on Redis: all or nothing, and never twice.

A dead letter and the acknowledgement of its entry go together: when Redis refuses the
dead letter (the key holds something else, the server is out of memory), the entry stays
pending, owned by its consumer, for a later try; a try that comes after another consumer
took the entry over writes nothing.
"""

import asyncio

import pytest
import redis.asyncio as redis
from _services import RedisServer

from quantum_core import (
    DeliveryGoneError,
    EventBus,
    RedisStreamsTransport,
    TransportError,
    current_event,
)
from quantum_core.testing import EventRecorder, eventually

TOPIC = "orders"
GROUP = "exec:h"


async def _one_delivery(transport, consumer="c1"):
    subscription = await transport.subscribe(TOPIC, group=GROUP, consumer=consumer)
    await transport.publish(TOPIC, [b"not an envelope"])
    (delivery,) = await subscription.fetch(10, 1.0)
    return subscription, delivery


async def _pending(client, stream):
    return await client.xpending_range(stream, GROUP, min="-", max="+", count=10)


async def test_a_dead_letter_redis_refuses_leaves_the_entry_pending(
    client, redis_prefix, transports
):
    stream, dead = f"{redis_prefix}:stream:{TOPIC}", f"{redis_prefix}:dead:{TOPIC}"
    subscription, delivery = await _one_delivery(transports())
    await client.set(dead, "someone else's string")

    with pytest.raises(TransportError, match="WRONGTYPE"):
        await subscription.dead_letter(delivery, b'{"why": "first try"}')
    (pending,) = await _pending(client, stream)
    assert pending["consumer"] == b"c1"  # not acknowledged: the event is not gone

    await client.delete(dead)  # fixed: the same call again stores it, then acknowledges
    await subscription.dead_letter(delivery, b'{"why": "second try"}')
    assert await _pending(client, stream) == []
    assert [fields for _, fields in await client.xrange(dead)] == [
        {b"record": b'{"why": "second try"}'}
    ]
    await subscription.close()


async def test_a_dead_letter_refused_for_lack_of_memory_leaves_the_entry_pending():
    server = RedisServer()
    server.start()
    client = redis.from_url(server.url)
    transport = RedisStreamsTransport(server.url, prefix="oom")
    try:
        subscription, delivery = await _one_delivery(transport)
        await client.config_set("maxmemory", 1)  # every write that needs memory is refused

        with pytest.raises(TransportError, match="maxmemory"):
            await subscription.dead_letter(delivery, b"record")
        assert len(await _pending(client, f"oom:stream:{TOPIC}")) == 1
        assert not await client.exists(f"oom:dead:{TOPIC}")

        await client.config_set("maxmemory", 0)
        await subscription.dead_letter(delivery, b"record")
        assert await _pending(client, f"oom:stream:{TOPIC}") == []
        assert await client.xlen(f"oom:dead:{TOPIC}") == 1
        await subscription.close()
    finally:
        await transport.close()
        await client.aclose()
        server.stop()


async def test_a_late_dead_letter_for_an_entry_another_consumer_took_writes_nothing(
    client, redis_prefix, transports
):
    stream, dead = f"{redis_prefix}:stream:{TOPIC}", f"{redis_prefix}:dead:{TOPIC}"
    transport = transports()
    first, delivery = await _one_delivery(transport, "c1")
    await client.set(dead, "in the way")
    with pytest.raises(TransportError):
        await first.dead_letter(delivery, b"from c1")
    await client.delete(dead)
    await client.xclaim(stream, GROUP, "c2", 0, [delivery.receipt])  # a replica took it over

    # Not set aside behind c2's back, and the bus is told not to try again.
    with pytest.raises(DeliveryGoneError, match="held by another consumer"):
        await first.dead_letter(delivery, b"from c1, late")
    assert not await client.exists(dead)
    (pending,) = await _pending(client, stream)
    assert pending["consumer"] == b"c2"

    with pytest.raises(DeliveryGoneError):
        await first.dead_letter(delivery, b"again")  # still nothing written
    assert not await client.exists(dead)
    await first.close()


async def test_a_dead_letter_whose_reply_was_lost_is_not_written_twice(
    client, redis_prefix, transports
):
    """A retry after a lost reply finds the entry acknowledged: one record, not two."""
    stream, dead = f"{redis_prefix}:stream:{TOPIC}", f"{redis_prefix}:dead:{TOPIC}"
    subscription, delivery = await _one_delivery(transports())
    await subscription.dead_letter(delivery, b"record")
    await subscription.dead_letter(delivery, b"record")  # the bus could not tell it worked
    assert await client.xlen(dead) == 1
    assert await _pending(client, stream) == []
    await asyncio.wait_for(subscription.close(), 5)


# The replica claims after 1.8 s idle; the consumer that failed would only take its own
# entry back after 3.6 s, and kept it fresh every 1.2 s while it still held it.
FAILED_CLAIM_IDLE, REPLICA_CLAIM_IDLE = 3.6, 1.8


def _replica(transport, handler, **options):
    bus = EventBus(transport, service_name="exec", max_attempts=1, **options)
    bus.subscribe(TOPIC, handler, name="h")
    return bus


async def test_an_entry_whose_dead_letter_failed_is_taken_over_by_a_replica(
    client, redis_prefix, transports, log_lines
):
    stream, dead = f"{redis_prefix}:stream:{TOPIC}", f"{redis_prefix}:dead:{TOPIC}"
    recorder = EventRecorder()

    async def fails(payload):
        raise RuntimeError("venue down")

    await client.set(dead, "in the way")  # the dead letter cannot be written
    failing = _replica(transports(claim_idle=FAILED_CLAIM_IDLE), fails)
    replica = _replica(transports(claim_idle=REPLICA_CLAIM_IDLE), recorder)
    async with failing:
        await failing.publish(TOPIC, {"n": 1})

        async def dead_letter_failed():
            return any(line["event"] == "dead_letter_failed" for line in log_lines())

        await eventually(dead_letter_failed, timeout=10)
        # Still refused: the failing consumer keeps trying, without keeping the entry alive.
        async with replica:
            await recorder.wait_for(1, timeout=REPLICA_CLAIM_IDLE + 6)

            async def acknowledged():
                return await _pending(client, stream) == []

            await eventually(acknowledged, timeout=5)
    assert recorder.payloads == [{"n": 1}]
    assert recorder.events[0].attempt == 2  # a redelivery, counted
    assert await client.type(dead) == b"string"  # handled by the replica: no dead letter


async def test_an_entry_whose_ack_failed_is_taken_over_by_a_replica(log_lines):
    server = RedisServer()
    server.start()
    admin = redis.from_url(server.url)
    # A consumer whose XACK Redis refuses (an ACL mistake, say); its handler succeeds.
    await admin.acl_setuser(
        "noack", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-xack"],
    )  # fmt: skip
    handled = []

    async def handle(payload):
        handled.append(current_event().attempt)

    no_ack = RedisStreamsTransport(
        f"redis://noack:pw@127.0.0.1:{server.port}/0", prefix="p", claim_idle=FAILED_CLAIM_IDLE
    )
    replica_transport = RedisStreamsTransport(server.url, prefix="p", claim_idle=REPLICA_CLAIM_IDLE)
    try:
        async with _replica(no_ack, handle) as failing:
            await failing.publish(TOPIC, {"n": 1})

            async def ack_failed():
                return any(line["event"] == "event_ack_failed" for line in log_lines())

            await eventually(ack_failed, timeout=10)
            async with _replica(replica_transport, handle):

                async def acknowledged():
                    return await _pending(admin, f"p:stream:{TOPIC}") == []

                await eventually(acknowledged, timeout=REPLICA_CLAIM_IDLE + 6)
        assert handled == [1, 2]  # again by the replica: at least once, not never
    finally:
        await no_ack.close()
        await replica_transport.close()
        await admin.aclose()
        server.stop()
