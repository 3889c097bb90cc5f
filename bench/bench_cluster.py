"""The bus on a Redis Cluster beside the bus on one Redis, both measured in the same run.

A cluster of our own (3 masters, 3 replicas, no persistence; the tests' launcher) on this
machine, so every master shares the same cores with the single Redis and with this client:
on 2 cores a cluster cannot be faster than one Redis here, and these rows show what the
cluster path costs per event, not what more machines would bring.

* publish one at a time and ``publish_many`` (batches of 100), cluster vs one Redis;
* end to end: a batch published and handled by a subscriber, cluster vs one Redis;
* per shard: three topics on three different masters published at once; the row is the
  events/s each master took, beside one topic on one master alone;
* ``wait_replicas=1``: publish one at a time, each waiting for a replica, vs without.

    .venv/bin/python bench/run.py --only cluster [--quick]
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import time

from redis.cluster import key_slot

from _clients import PAYLOAD
from _harness import REPO, Context, Row, Stat
from quantum_core import EventBus, RedisStreamsTransport

sys.path.insert(0, str(REPO / "tests"))
from redis_cluster import LocalCluster

TITLE = "Redis Cluster (3 masters on this machine) beside one Redis"
SECTION = "Event bus on a Redis Cluster"
_cluster: LocalCluster | None = None


def _the_cluster() -> LocalCluster:
    global _cluster
    if _cluster is None:
        _cluster = LocalCluster()
        atexit.register(_cluster.stop)
    return _cluster


async def _rate(n: int, body: object) -> float:
    start = time.perf_counter()
    await body  # type: ignore[misc]
    return n / (time.perf_counter() - start)


async def _publish_rates(
    url: str, prefix: str, n_one: int, n_batch: int, **options: object
) -> dict[str, float]:
    async with RedisStreamsTransport(url, prefix=prefix, **options) as transport:  # type: ignore[arg-type]
        bus = EventBus(transport, service_name="bench")
        await bus.publish("orders", PAYLOAD)  # connect, untimed

        async def one() -> None:
            for _ in range(n_one):
                await bus.publish("orders", PAYLOAD)

        async def many() -> None:
            for _ in range(n_batch // 100):
                await bus.publish_many("orders", [PAYLOAD] * 100)

        return {"one": await _rate(n_one, one()), "many": await _rate(n_batch, many())}


async def _end_to_end(url: str, prefix: str, n: int) -> float:
    done = asyncio.Event()
    handled = 0

    async def handle(payload: dict) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    async with RedisStreamsTransport(url, prefix=prefix) as transport:
        bus = EventBus(transport, service_name="bench", concurrency=100)
        bus.subscribe("fills", handle, name="handle")
        async with bus:
            start = time.perf_counter()
            for _ in range(n // 100):
                await bus.publish_many("fills", [PAYLOAD] * 100)
            await asyncio.wait_for(done.wait(), 120)
            return n / (time.perf_counter() - start)


def _topics_on_distinct_masters(cluster: LocalCluster, prefix: str) -> list[str]:
    chosen: dict[int, str] = {}
    for n in range(1000):
        topic = f"shard-{n}"
        master = cluster.master_of(key_slot(f"{{{prefix}:{topic}}}:stream".encode()))
        chosen.setdefault(master, topic)
        if len(chosen) == 3:
            break
    return list(chosen.values())


async def _per_shard(url: str, prefix: str, topics: list[str], n: int) -> float:
    """Events/s each master takes while every topic is published at once (publish_many)."""
    async with RedisStreamsTransport(url, prefix=prefix) as transport:
        bus = EventBus(transport, service_name="bench")
        for topic in topics:
            await bus.publish(topic, PAYLOAD)

        async def fill(topic: str) -> None:
            for _ in range(n // 100):
                await bus.publish_many(topic, [PAYLOAD] * 100)

        total = await _rate(n * len(topics), asyncio.gather(*(fill(t) for t in topics)))
        return total / len(topics)


async def measure(ctx: Context) -> dict[str, float]:
    cluster = _the_cluster()
    n_one, n_batch, n_e2e = (
        ctx.size(3_000, 1_000),
        ctx.size(30_000, 10_000),
        ctx.size(20_000, 5_000),
    )
    single = await _publish_rates(ctx.url, "bench-single", n_one, n_batch)
    clustered = await _publish_rates(cluster.url, "bench-cluster", n_one, n_batch)
    waited = await _publish_rates(cluster.url, "bench-wait", n_one, 100, wait_replicas=1)
    topics = _topics_on_distinct_masters(cluster, "bench-shard")
    return {
        "one_single": single["one"],
        "one_cluster": clustered["one"],
        "many_single": single["many"],
        "many_cluster": clustered["many"],
        "e2e_single": await _end_to_end(ctx.url, "bench-e2e-single", n_e2e),
        "e2e_cluster": await _end_to_end(cluster.url, "bench-e2e-cluster", n_e2e),
        "one_waited": waited["one"],
        "shard_alone": await _per_shard(cluster.url, "bench-shard", topics[:1], n_batch),
        "shard_three": await _per_shard(cluster.url, "bench-shard", topics, n_batch),
    }


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    return [
        Row(SECTION, "publish one at a time, cluster", "events/s", stats["one_cluster"],
            "one Redis", stats["one_single"]),
        Row(SECTION, "`publish_many` (100), cluster", "events/s", stats["many_cluster"],
            "one Redis", stats["many_single"]),
        Row(SECTION, "end to end (publish_many 100 + handle), cluster", "events/s",
            stats["e2e_cluster"], "one Redis", stats["e2e_single"]),
        Row(SECTION, "publish one at a time, `wait_replicas=1`", "events/s",
            stats["one_waited"], "cluster, no wait", stats["one_cluster"]),
        Row(SECTION, "per master, 3 topics on 3 masters at once", "events/s per master",
            stats["shard_three"], "1 topic on 1 master alone", stats["shard_alone"],
            note="2 cores serve all 3 masters and the client: per master falls as they share"),
    ]  # fmt: skip


if __name__ == "__main__":
    from run import main

    main(["--only", "cluster"])
