"""Retries and dead letters on the real Redis: what is on the server, and who holds what.

The semantics themselves run on Redis in the contract suite (tests/contract); these tests
look at the server: pending entries while a retry waits, the dead-letter stream, XDEL/DEL.
"""

import asyncio

import pytest

from quantum_core import EventBus, RedisStreamsTransport, TransportError, current_event
from quantum_core.testing import eventually


async def test_dead_letters_on_the_server_xack_xdel_and_del(client, redis_prefix, transports):
    stream, dead = f"{redis_prefix}:stream:orders", f"{redis_prefix}:dead:orders"
    fixed = False
    handled = []

    async def execute(payload):
        if not fixed:
            raise ValueError("venue rejected")
        handled.append(current_event().id)

    bus = EventBus(transports(), service_name="exec", max_attempts=2, retry_backoff=0.01)
    bus.subscribe("orders", execute, name="execute")
    async with bus:
        event_ids = await bus.publish_many("orders", [{"n": 1}, {"n": 2}])

        async def two_dead():
            return await client.xlen(dead) == 2

        await eventually(two_dead, timeout=15)
        (group,) = await client.xinfo_groups(stream)
        assert group["pending"] == 0  # set aside and acknowledged in one MULTI
        entries = await client.xrange(dead)
        letters = await bus.dead_letters("orders")
        assert [d.id for d in letters] == [entry_id.decode() for entry_id, _ in entries]
        assert sorted(d.event_id for d in letters) == sorted(event_ids)  # jitter picks the order
        assert all(fields.keys() == {b"record"} for _, fields in entries)

        fixed = True
        await bus.replay_dead_letter("orders", letters[0].id)

        async def replayed():
            return handled == [letters[0].event_id]

        await eventually(replayed, timeout=15)
        assert [entry_id.decode() for entry_id, _ in await client.xrange(dead)] == [letters[1].id]
        assert await client.xlen(stream) == 3  # the two events and the replay
        assert await bus.purge_dead_letters("orders") == 1
        assert not await client.exists(dead)
        assert await bus.purge_dead_letters("orders") == 0
        assert await bus.dead_letters("orders") == []


async def test_an_event_waiting_for_its_retry_stays_pending_and_is_not_claimed(
    client, redis_prefix, transports
):
    """A live replica keeps its retrying entries fresh: no other replica steals them."""
    attempts = []

    def replica(name):
        async def fails(payload):
            attempts.append((name, current_event().attempt))
            raise RuntimeError("down")

        bus = EventBus(transports(claim_idle=0.6), service_name="exec", concurrency=1)
        bus.subscribe("orders", fails, name="h", max_attempts=2, retry_backoff=5)
        return bus

    a, b = replica("a"), replica("b")
    async with a, b:
        await EventBus(transports(), service_name="p").publish("orders", {"n": 1})

        async def retrying():
            in_a, in_b = (await a.stats())["orders -> h"], (await b.stats())["orders -> h"]
            return in_a.retrying + in_b.retrying == 1

        await eventually(retrying, timeout=15)
        stream = f"{redis_prefix}:stream:orders"
        (before,) = await client.xpending_range(stream, "exec:h", min="-", max="+", count=10)
        await asyncio.sleep(1.8)  # three times claim_idle; the retry comes after 2.5-5 s
        (after,) = await client.xpending_range(stream, "exec:h", min="-", max="+", count=10)
        assert len(attempts) == 1
        assert after["consumer"] == before["consumer"]
        assert after["times_delivered"] == 1

        async def dead():
            return len(await a.dead_letters("orders")) == 1

        await eventually(dead, timeout=15)
    (first, second) = attempts
    assert first[0] == second[0]  # both attempts in the replica that took it
    assert [attempt for _, attempt in attempts] == [1, 2]


async def test_a_restarted_consumer_counts_the_redelivery_as_an_attempt(redis_prefix, transports):
    attempts = []

    async def fails(payload):
        attempts.append(current_event().attempt)
        raise RuntimeError("down")

    def pod():
        bus = EventBus(
            transports(claim_idle=600),
            service_name="exec",
            consumer_name="pod-0",
            max_attempts=2,
            retry_backoff=60,
            retry_backoff_max=60,
        )
        bus.subscribe("orders", fails, name="h")
        return bus

    first = pod()
    async with first:
        await first.publish("orders", {"n": 1})

        async def retrying():
            return (await first.stats())["orders -> h"].retrying == 1

        await eventually(retrying, timeout=15)
    again = pod()
    async with again:

        async def dead():
            return len(await again.dead_letters("orders")) == 1

        await eventually(dead, timeout=15)
        (letter,) = await again.dead_letters("orders")
        stats = (await again.stats())["orders -> h"]
    assert attempts == [1, 2]
    assert letter.attempts == 2
    assert (stats.failed, stats.retried, stats.dead_lettered, stats.pending) == (1, 0, 1, 0)


async def test_stats_report_the_groups_backlog_on_redis(transports):
    release = asyncio.Event()

    async def slow(payload):
        await release.wait()

    bus = EventBus(transports(), service_name="svc", concurrency=2)
    bus.subscribe("t.x", slow, name="slow")
    async with bus:
        await bus.publish_many("t.x", [{"n": n} for n in range(5)])

        async def two_pending():
            return (await bus.stats())["t.x -> slow"].pending == 2

        await eventually(two_pending, timeout=15)
        assert (await bus.stats())["t.x -> slow"].lag == 3
        release.set()

        async def all_handled():
            stats = (await bus.stats())["t.x -> slow"]
            return (stats.handled, stats.pending, stats.lag) == (5, 0, 0)

        await eventually(all_handled, timeout=15)


async def test_dead_letter_ids_are_checked_and_redis_errors_are_ours(redis_prefix, transports):
    bus = EventBus(transports(), service_name="svc")
    with pytest.raises(ValueError, match=r"not a Redis stream entry id"):
        await bus.dead_letters("orders", after="abc")
    with pytest.raises(ValueError, match=r"not a Redis stream entry id"):
        await bus.replay_dead_letter("orders", "1-2-3")
    with pytest.raises(LookupError, match=r"no dead letter '1-0'"):
        await bus.replay_dead_letter("orders", "1-0")
    await bus.stop()

    from service_helpers import free_port

    unreachable = RedisStreamsTransport(f"redis://127.0.0.1:{free_port()}/0")
    bus = EventBus(unreachable, service_name="svc")
    with pytest.raises(TransportError, match=r"reading dead letters from"):
        await bus.dead_letters("orders")
    with pytest.raises(TransportError, match=r"deleting dead letters from"):
        await bus.purge_dead_letters("orders")
    await unreachable.close()
