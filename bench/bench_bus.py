"""Publishing on Redis Streams, in this process, each figure beside raw redis-py doing the same.

* one at a time: ``await bus.publish`` vs one ``XADD`` of the same envelope bytes;
* batches of 100: ``publish_many`` vs a pipelined batch of 100 ``XADD``;
* 100 tasks publishing at once (``await bus.publish`` in each) vs 100 tasks each awaiting
  ``XADD`` on one redis-py client (its pool opens the connections it needs).

    .venv/bin/python bench/run.py --only bus [--quick]
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as redis

from _clients import ENVELOPE, PAYLOAD, TOPIC
from _harness import Context, Row, Stat, Target
from quantum_core import EventBus, RedisStreamsTransport

TITLE = "publish (Redis Streams)"
TASKS = 100
SECTION = "Event bus on Redis Streams"


async def _rate(n: int, body: object) -> float:
    start = time.perf_counter()
    await body  # type: ignore[misc]
    return n / (time.perf_counter() - start)


async def bus_rates(url: str, n_one: int, n_batch: int) -> dict[str, float]:
    async with RedisStreamsTransport(url, prefix="bench-pub") as transport:
        bus = EventBus(transport, service_name="bench")
        await bus.publish(TOPIC, PAYLOAD)  # connect, untimed

        async def one() -> None:
            for _ in range(n_one):
                await bus.publish(TOPIC, PAYLOAD)

        async def many() -> None:
            batch = [PAYLOAD] * 100
            for _ in range(n_batch // 100):
                await bus.publish_many(TOPIC, batch)

        async def concurrent() -> None:
            async def task() -> None:
                for _ in range(n_one // TASKS * 4):
                    await bus.publish(TOPIC, PAYLOAD)

            await asyncio.gather(*(task() for _ in range(TASKS)))

        result = {
            "publish_one": await _rate(n_one, one()),
            "publish_many": await _rate(n_batch, many()),
            "concurrent": await _rate(n_one // TASKS * 4 * TASKS, concurrent()),
        }
        await bus.stop()
    return result


async def raw_rates(url: str, n_one: int, n_batch: int) -> dict[str, float]:
    client = redis.from_url(url, max_connections=TASKS + 10)
    key = "raw:publish"

    async def xadd() -> None:
        await client.xadd(key, {b"event": ENVELOPE}, maxlen=1_000_000, approximate=True)

    await xadd()

    async def one() -> None:
        for _ in range(n_one):
            await xadd()

    async def many() -> None:
        for _ in range(n_batch // 100):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(100):
                    pipe.xadd(key, {b"event": ENVELOPE}, maxlen=1_000_000, approximate=True)
                await pipe.execute()

    async def concurrent() -> None:
        async def task() -> None:
            for _ in range(n_one // TASKS * 4):
                await xadd()

        await asyncio.gather(*(task() for _ in range(TASKS)))

    result = {
        "publish_one_raw": await _rate(n_one, one()),
        "publish_many_raw": await _rate(n_batch, many()),
        "concurrent_raw": await _rate(n_one // TASKS * 4 * TASKS, concurrent()),
    }
    await client.aclose()
    return result


async def measure(ctx: Context) -> dict[str, float]:
    n_one, n_batch = ctx.size(5_000, 2_000), ctx.size(50_000, 20_000)
    return await bus_rates(ctx.url, n_one, n_batch) | await raw_rates(ctx.url, n_one, n_batch)


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    return [
        Row(
            SECTION,
            "publish one at a time (`await bus.publish` vs one `XADD`)",
            "events/s",
            stats["publish_one"],
            "raw XADD",
            stats["publish_one_raw"],
            Target(">=", 0.8, "ratio"),
        ),
        Row(
            SECTION,
            "`publish_many`, batches of 100 (vs pipelined `XADD` x100)",
            "events/s",
            stats["publish_many"],
            "raw pipeline",
            stats["publish_many_raw"],
            Target(">=", 0.8, "ratio"),
        ),
        Row(
            SECTION,
            f"{TASKS} tasks publishing at once",
            "events/s",
            stats["concurrent"],
            f"raw XADD, {TASKS} tasks",
            stats["concurrent_raw"],
            Target(">=", 50_000),
        ),
    ]


if __name__ == "__main__":
    from run import main

    main(["--only", "bus"])
