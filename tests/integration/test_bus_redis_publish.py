"""Concurrent publishes on Redis share pipelines, and each caller still gets its own outcome."""

import asyncio

import pytest
import redis.asyncio as redis

from quantum_core import EventBus, TransportError
from quantum_core.bus.envelope import decode


async def _payloads(client: redis.Redis, key: str) -> list[dict]:
    return [decode(fields[b"event"]).payload for _, fields in await client.xrange(key)]


async def test_a_hundred_concurrent_publishers_share_pipelines_in_order(client, transports):
    transport = transports()
    sends = 0
    wire = transport._state.wire
    xadds = wire.xadds

    async def counting(*args):
        nonlocal sends
        sends += 1
        return await xadds(*args)

    wire.xadds = counting
    bus = EventBus(transport, service_name="pub")

    async def publisher(task: int) -> None:
        for seq in range(20):
            await bus.publish("orders.placed", {"task": task, "seq": seq})

    await asyncio.gather(*(publisher(task) for task in range(100)))
    payloads = await _payloads(client, transport.stream_key("orders.placed"))
    assert len(payloads) == 2000
    for task in range(100):  # every task's events are stored in the order it published them
        assert [p["seq"] for p in payloads if p["task"] == task] == list(range(20))
    assert sends < 200  # 2,000 publishes went in far fewer round trips


async def test_each_caller_gets_the_error_of_its_own_entries_only(client, transports, redis_prefix):
    transport = transports()
    await client.set(transport.stream_key("not.a.stream"), "a string, not a stream")
    bus = EventBus(transport, service_name="pub")
    # The first publish goes at once; the others queue behind it and share one pipeline.
    results = await asyncio.gather(
        bus.publish("good.events", {"n": 0}),
        bus.publish("good.events", {"n": 1}),
        bus.publish("not.a.stream", {"n": 2}),
        bus.publish_many("good.events", [{"n": 3}, {"n": 4}]),
        return_exceptions=True,
    )
    assert isinstance(results[2], TransportError)
    assert "WRONGTYPE" in str(results[2])
    assert not any(isinstance(r, BaseException) for i, r in enumerate(results) if i != 2)
    payloads = await _payloads(client, transport.stream_key("good.events"))
    assert [p["n"] for p in payloads] == [0, 1, 3, 4]


async def test_a_cancelled_caller_loses_nothing_for_the_others(client, transports):
    transport = transports()
    bus = EventBus(transport, service_name="pub")
    first = asyncio.create_task(bus.publish("t.x", {"n": 0}))
    queued = [asyncio.create_task(bus.publish("t.x", {"n": n})) for n in range(1, 5)]
    await asyncio.sleep(0)  # every task ran up to its first wait: the first one is in flight
    assert not transport._publisher._batcher.idle
    queued[1].cancel()  # still queued: dropped, never sent
    first.cancel()  # in flight: it may or may not be stored; the queued ones go on regardless
    await asyncio.gather(first, *queued, return_exceptions=True)
    assert queued[1].cancelled()
    assert all(task.result() for task in (queued[0], queued[2], queued[3]))
    stored = [p["n"] for p in await _payloads(client, transport.stream_key("t.x"))]
    assert [n for n in stored if n != 0] == [1, 3, 4]
    assert transport._publisher._batcher.idle
    await bus.publish("t.x", {"n": 5})  # and the publisher still works afterwards


async def test_queued_callers_get_a_transport_error_when_redis_is_unreachable(redis_prefix):
    from quantum_core import RedisStreamsTransport

    transport = RedisStreamsTransport("redis://127.0.0.1:1/0", prefix=redis_prefix)
    bus = EventBus(transport, service_name="pub")
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(bus.publish("t.x", {"n": n}) for n in range(5)), return_exceptions=True
            ),
            30,
        )
        assert all(isinstance(r, TransportError) for r in results), results
        assert transport._publisher._batcher.idle
    finally:
        await transport.close()


@pytest.mark.parametrize("count", [1, 2, 1500])
async def test_publish_many_of_any_size_is_stored_whole_and_in_order(client, transports, count):
    transport = transports()
    bus = EventBus(transport, service_name="pub")
    others = [bus.publish("t.y", {"other": n}) for n in range(3)]
    await asyncio.gather(bus.publish_many("t.y", [{"n": n} for n in range(count)]), *others)
    payloads = await _payloads(client, transport.stream_key("t.y"))
    assert [p["n"] for p in payloads if "n" in p] == list(range(count))
    assert len(payloads) == count + 3


# The XADDs are packed by the bus itself and their replies parsed in one pass.


async def test_what_is_stored_is_exactly_what_redis_py_would_have_stored(client, transports):
    transport = transports(maxlen=50)
    bus = EventBus(transport, service_name="pub")
    payloads = [{"n": n, "text": "ünïcode \r\n $5\r\n *3"} for n in range(120)]
    await bus.publish_many("t.exact", payloads)
    key = transport.stream_key("t.exact")
    entries = await client.xrange(key)
    assert 50 <= len(entries) < 120  # MAXLEN ~ trimmed whole nodes, as redis-py's xadd does
    assert [decode(f[b"event"]).payload for _, f in entries] == payloads[-len(entries) :]
    assert all(list(fields) == [b"event"] for _, fields in entries)


async def test_max_age_trims_by_entry_id(client, transports):
    transport = transports(max_age=1)
    bus = EventBus(transport, service_name="pub")
    key = transport.stream_key("t.old")
    async with client.pipeline(transaction=False) as pipe:
        for n in range(1, 251):
            pipe.xadd(key, {b"event": b"from long ago"}, id=f"{n}-0")
        await pipe.execute()
    await bus.publish("t.old", {"n": 1})
    # MINID ~ drops whole nodes (100 entries each) older than the age: 200 of the 250 here
    assert await client.xlen(key) <= 51


async def test_a_dropped_connection_is_reconnected_and_nothing_is_lost(client, transports):
    transport = transports()
    bus = EventBus(transport, service_name="pub")
    await bus.publish("t.drop", {"n": 0})
    own = await transport._state.commands.client_id()  # the pool's one connection, the publisher's
    assert await client.client_kill_filter(_id=own) == 1
    await bus.publish_many("t.drop", [{"n": n} for n in range(1, 4)])
    payloads = await _payloads(client, transport.stream_key("t.drop"))
    assert [p["n"] for p in payloads] == [0, 1, 2, 3]


async def test_a_parser_of_the_users_own_is_kept_and_still_works(redis_url, redis_prefix, client):
    from redis._parsers import _AsyncRESP3Parser

    from quantum_core import RedisStreamsTransport

    custom = type("Custom", (_AsyncRESP3Parser,), {})
    pool = redis.ConnectionPool.from_url(redis_url, parser_class=custom)
    user = redis.Redis(connection_pool=pool)
    async with RedisStreamsTransport(user, prefix=redis_prefix) as transport:
        bus = EventBus(transport, service_name="pub")
        await bus.publish_many("t.custom", [{"n": 1}, {"n": 2}])
        await client.set(transport.stream_key("not.a.stream"), "x")
        with pytest.raises(TransportError, match="WRONGTYPE"):
            await bus.publish("not.a.stream", {"n": 3})
        await bus.publish("t.custom", {"n": 4})  # the connection is still in step
        connection = await transport._state.commands.connection_pool.get_connection()
        assert type(connection._parser) is custom
        await transport._state.commands.connection_pool.release(connection)
    assert [p["n"] for p in await _payloads(client, transport.stream_key("t.custom"))] == [1, 2, 4]
    await user.aclose()


async def test_the_bus_parses_replies_with_its_own_parser(transports):
    from redis.asyncio.connection import DefaultParser
    from redis.utils import HIREDIS_AVAILABLE

    from quantum_core.transports.redis.parser import WholeReplyParser

    transport = transports()
    await EventBus(transport, service_name="pub").publish("t.x", {"n": 1})
    pool = transport._state.commands.connection_pool
    connection = await pool.get_connection()
    try:  # redis-py keeps the parser in ``_parser``: a rename there must fail here, loudly
        chosen = pool.connection_kwargs.get("parser_class", DefaultParser)
        assert isinstance(connection._parser, chosen)
        if not HIREDIS_AVAILABLE:  # hiredis, when installed, is left in place
            assert isinstance(connection._parser, WholeReplyParser)
    finally:
        await pool.release(connection)
