"""The bus on a Redis Cluster when things go wrong: a consumer SIGKILLed, the master of a
topic's slot SIGKILLed (failover), the topic's slot moved to another master (resharding).

The crash test shares the session's cluster; failover and resharding each start their own.
"""

import asyncio
import time

from _processes import finish, handled_numbers, start_consumer
from redis.asyncio.cluster import RedisCluster
from redis.cluster import key_slot

from quantum_core import EventBus, RedisStreamsTransport
from quantum_core.testing.brokers import new_namespace
from redis_cluster import local_cluster

EVENTS = 3_000


def _first_node(url: str) -> RedisCluster:
    host, _, port = url.removeprefix("redis+cluster://").split(",")[0].rpartition(":")
    return RedisCluster(host=host, port=int(port))


def _slot_of(prefix: str, topic: str) -> int:
    return key_slot(f"{{{prefix}:{topic}}}:stream".encode())


async def _until(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_sigkilled_consumer_on_a_cluster_loses_nothing(redis_cluster):
    prefix = new_namespace()
    url = redis_cluster.url
    client = _first_node(url)
    child = start_consumer(url, prefix)
    try:
        async with RedisStreamsTransport(url, prefix=prefix) as publisher_transport:
            publisher = EventBus(publisher_transport, service_name="risk")
            for start in range(0, EVENTS, 500):
                await publisher.publish_many(
                    "orders", [{"n": n} for n in range(start, start + 500)]
                )

        async def some_handled():
            return await client.llen(f"{prefix}:handled") >= EVENTS // 5

        await _until(some_handled, 30, "the consumer handled nothing")
        child.kill()  # SIGKILL: no drain, no acknowledgement of what was in flight
        child.wait(timeout=10)

        async def handle(payload):
            await client.rpush(f"{prefix}:handled", payload["n"])

        async with RedisStreamsTransport(url, prefix=prefix, claim_idle=1.0) as transport:
            replacement = EventBus(transport, service_name="execution", concurrency=32)
            replacement.subscribe("orders", handle, name="handle")
            async with replacement:

                async def all_handled():
                    return len(set(await handled_numbers(client, prefix))) >= EVENTS

                await _until(all_handled, 60, "the replacement did not finish")

                async def all_acknowledged():
                    return (await replacement.backlog())["orders -> handle"].pending == 0

                await _until(all_acknowledged, 10, "events stay pending")
        numbers = await handled_numbers(client, prefix)
        assert set(numbers) == set(range(EVENTS))  # lost 0
    finally:
        finish(child)
        await client.aclose()


async def test_master_sigkilled_under_load_loses_no_publish_that_returned():
    """wait_replicas=1: a publish returns once a replica has it, so the promoted one has it.

    The publisher goes on through the failover (its publishes fail meanwhile, and after
    it too: the promoted master has no replica left to confirm). The consumer is never
    restarted: events published after the promotion reach it all the same.
    """
    prefix = new_namespace()
    with local_cluster() as cluster:
        slot = _slot_of(prefix, "orders")
        master = cluster.master_of(slot)
        handled: set[int] = set()
        returned: list[int] = []
        failed = 0

        async def handle(payload):
            handled.add(payload["n"])

        consumer_transport = RedisStreamsTransport(cluster.url, prefix=prefix, claim_idle=1.0)
        consumer = EventBus(consumer_transport, service_name="execution", concurrency=16)
        consumer.subscribe("orders", handle, name="handle")
        publisher_transport = RedisStreamsTransport(cluster.url, prefix=prefix, wait_replicas=1)
        publisher = EventBus(publisher_transport, service_name="risk")
        stop = asyncio.Event()

        async def publish_all():
            nonlocal failed
            n = 0
            while not stop.is_set():
                try:
                    await publisher.publish("orders", {"n": n})
                except Exception:  # the master died under it: this one did not return
                    failed += 1
                    await asyncio.sleep(0.02)
                else:
                    returned.append(n)
                n += 1

        async with consumer_transport, publisher_transport, consumer:
            publishing = asyncio.create_task(publish_all())

            async def busy():
                return len(handled) >= 200

            await _until(busy, 30, "nothing was handled before the kill")
            cluster.kill(master)
            promoted = await asyncio.to_thread(cluster.wait_promoted, slot, master)
            stop.set()
            await publishing
            after = range(1_000_000, 1_000_100)
            async with RedisStreamsTransport(cluster.url, prefix=prefix) as later_transport:
                later = EventBus(later_transport, service_name="risk")
                await later.publish_many("orders", [{"n": n} for n in after])

            async def caught_up():
                return set(returned) <= handled and set(after) <= handled

            await _until(caught_up, 30, f"lost {len(set(returned) - handled)} publishes")
        print(
            f"\nfailover: returned={len(returned)} failed_publishes={failed} "
            f"lost=0, handled after the promotion={len(after)}"
        )
        assert cluster.master_of(slot) == promoted != master


async def test_a_busy_topics_slot_moves_to_another_master_without_loss_or_error():
    prefix = new_namespace()
    with local_cluster() as cluster:
        slot = _slot_of(prefix, "orders")
        handled: set[int] = set()
        returned: list[int] = []

        async def handle(payload):
            handled.add(payload["n"])

        async with (
            RedisStreamsTransport(cluster.url, prefix=prefix, claim_idle=1.0) as consumer_side,
            RedisStreamsTransport(cluster.url, prefix=prefix) as publisher_side,
        ):
            consumer = EventBus(consumer_side, service_name="execution", concurrency=16)
            consumer.subscribe("orders", handle, name="handle")
            publisher = EventBus(publisher_side, service_name="risk")
            stop = asyncio.Event()

            async def publish_all():  # any error here fails the test: none may reach us
                n = 0
                while not stop.is_set():
                    await publisher.publish_many("orders", [{"n": n}, {"n": n + 1}])
                    returned.extend((n, n + 1))
                    n += 2

            async with consumer:
                publishing = asyncio.create_task(publish_all())

                async def busy():
                    return len(handled) >= 500

                await _until(busy, 30, "nothing was handled before the move")
                source = cluster.master_of(slot)
                target = next(port for port in cluster.masters() if port != source)
                await asyncio.to_thread(cluster.move_slot, slot, source, target)
                moved_at = len(returned)

                async def more():
                    return len(returned) >= moved_at + 500 or publishing.done()

                await _until(more, 30, "publishing stopped after the move")
                stop.set()
                await publishing  # raises whatever reached the publisher

                async def caught_up():
                    return set(returned) <= handled

                await _until(caught_up, 30, f"lost {len(set(returned) - handled)} events")
            assert cluster.master_of(slot) == target
