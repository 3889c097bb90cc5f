"""The lean XREADGROUP path on the real Redis: replies of many reads, both protocols."""

import asyncio

import pytest
import redis.asyncio as redis

from quantum_core import EventBus, RedisStreamsTransport
from quantum_core.transports.redis.parser import WholeReplyParser


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_reply_far_larger_than_one_socket_read_arrives_whole(
    redis_url, redis_prefix, protocol
):
    client = redis.from_url(redis_url, protocol=protocol)
    transport = RedisStreamsTransport(client, prefix=redis_prefix)
    handled: list[tuple[int, int]] = []

    async def handle(payload):
        handled.append((payload["n"], len(payload["blob"])))

    try:
        publisher = EventBus(transport, service_name="pub")
        sizes = [1, 70_000, 3, 200_000, 65_531, 0, 131_072] * 3  # around the 64 KiB read size
        await publisher.publish_many(
            "blobs", [{"n": n, "blob": "é" * size} for n, size in enumerate(sizes)]
        )
        bus = EventBus(transport, service_name="svc", read_count=100)
        bus.subscribe("blobs", handle, name="h", from_beginning=True)
        async with bus:
            reader = bus._consumers[0].subscription._reader
            assert reader.connection_pool.connection_kwargs["parser_class"] is WholeReplyParser
            async with asyncio.timeout(10):
                while len(handled) < len(sizes):
                    await asyncio.sleep(0.01)
        assert sorted(handled) == list(enumerate(sizes))
    finally:
        await transport.close()
        await client.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_an_entry_of_another_program_is_set_aside_with_its_fields(
    redis_url, redis_prefix, protocol, client
):
    user_client = redis.from_url(redis_url, protocol=protocol)
    transport = RedisStreamsTransport(user_client, prefix=redis_prefix)
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("orders", _ignore, name="h")
    try:
        async with bus:
            await client.xadd(f"{redis_prefix}:stream:orders", {"foo": "bar", "n": "1"})
            async with asyncio.timeout(5):
                while not await client.xlen(f"{redis_prefix}:dead:orders"):
                    await asyncio.sleep(0.01)
        ((_, fields),) = await client.xrange(f"{redis_prefix}:dead:orders")
        assert b"foo" in fields[b"record"]
        assert b"bar" in fields[b"record"]
    finally:
        await transport.close()
        await user_client.aclose()


async def _ignore(payload):
    pass
