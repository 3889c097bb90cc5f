"""Memory: what pending events cost, and whether a long run leaks.

Each figure comes from a fresh child process, so nothing measured before weighs on it.

* pending, in memory: 100,000 events published to a ``MemoryTransport`` whose consumer is
  stuck (its handler never returns): RSS after, minus RSS before.
* pending, on Redis: the same with Redis Streams: the events wait in Redis, and the
  consumer process must stay flat (it reads no more than it can handle).
* a long run: N events (1,000,000; 100,000 quick) through the bus on the in-memory
  transport, publisher and handler in one process; RSS at 20% of the run and at the end.
  The transport keeps its last ``max_backlog`` events for late groups (set to 10,000 here,
  so the retained history is full long before the 20% mark).

    .venv/bin/python bench/run.py --only memory [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import subprocess
import sys
from typing import Any

from _clients import PAYLOAD, TOPIC
from _harness import Context, Row, Stat, Target, rss_mb
from quantum_core import EventBus, MemoryTransport, RedisStreamsTransport, configure_logging

TITLE = "memory"
SECTION = "Memory (RSS)"
RUNS = 1
PENDING = 100_000


async def _stuck_bus(transport: Any) -> EventBus:
    never = asyncio.Event()

    async def handle(payload: dict[str, Any]) -> None:
        await never.wait()

    bus = EventBus(transport, service_name="bench", read_count=100, concurrency=100)
    bus.subscribe(TOPIC, handle, name="stuck")
    await bus.start()
    return bus


async def pending_memory() -> dict[str, float]:
    bus = await _stuck_bus(MemoryTransport())
    gc.collect()
    before = rss_mb()
    for _ in range(PENDING // 100):
        await bus.publish_many(TOPIC, [PAYLOAD] * 100)
    await asyncio.sleep(0.5)
    gc.collect()
    return {"before_mb": before, "after_mb": rss_mb()}


async def pending_redis(url: str) -> dict[str, float]:
    async with RedisStreamsTransport(url, prefix="bench-mem") as transport:
        bus = await _stuck_bus(transport)
        await asyncio.sleep(0.5)
        gc.collect()
        before = rss_mb()
        async with RedisStreamsTransport(url, prefix="bench-mem") as other:
            publisher = EventBus(other, service_name="pub")
            for _ in range(PENDING // 100):
                await publisher.publish_many(TOPIC, [PAYLOAD] * 100)
        await asyncio.sleep(2)  # the consumer has had its chance to read too much
        gc.collect()
        after = rss_mb()
        await bus.stop()
    return {"before_mb": before, "after_mb": after}


async def long_run(n: int) -> dict[str, float]:
    handled = 0
    done = asyncio.Event()

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    bus = EventBus(
        MemoryTransport(max_backlog=10_000), service_name="bench", read_count=100, concurrency=100
    )
    bus.subscribe(TOPIC, handle, name="handle")
    await bus.start()
    batch = [PAYLOAD] * 100
    at_fifth = 0.0
    for index in range(n // 100):
        await bus.publish_many(TOPIC, batch)
        # stay well within max_backlog of the consumer: a yield to it, not a wait for a condition
        while handled < index * 100 - 2_000:  # noqa: ASYNC110
            await asyncio.sleep(0)
        if index == n // 500:
            gc.collect()
            at_fifth = rss_mb()
    await asyncio.wait_for(done.wait(), 300)
    gc.collect()
    end = rss_mb()
    await bus.stop()
    return {"at_fifth_mb": at_fifth, "end_mb": end}


def _child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "child", *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


async def measure(ctx: Context) -> dict[str, float]:
    memory = await asyncio.to_thread(_child, "pending-memory")
    on_redis = await asyncio.to_thread(_child, "pending-redis", ctx.url)
    n = ctx.size(1_000_000, 100_000)
    run = await asyncio.to_thread(_child, "long-run", str(n))
    ctx.info["memory_long_run_events"] = n
    return {
        "pending_memory_mb": memory["after_mb"] - memory["before_mb"],
        "pending_memory_bytes_per_event": (memory["after_mb"] - memory["before_mb"])
        * 2**20
        / PENDING,
        "pending_redis_mb": on_redis["after_mb"] - on_redis["before_mb"],
        "consumer_rss_mb": on_redis["after_mb"],
        "long_run_start_mb": run["at_fifth_mb"],
        "long_run_end_mb": run["end_mb"],
        "long_run_growth_pct": (run["end_mb"] / run["at_fifth_mb"] - 1) * 100,
    }


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    n = ctx.info.get("memory_long_run_events", 0)
    start, end = stats["long_run_start_mb"].median, stats["long_run_end_mb"].median
    return [
        Row(
            SECTION,
            f"{PENDING:,} events pending, in-memory transport: RSS growth",
            "MB",
            stats["pending_memory_mb"],
        ),
        Row(SECTION, "  per pending event", "bytes", stats["pending_memory_bytes_per_event"]),
        Row(
            SECTION,
            f"{PENDING:,} events pending in Redis: consumer RSS growth",
            "MB",
            stats["pending_redis_mb"],
            note=f"consumer RSS {stats['consumer_rss_mb'].median:.0f} MB",
        ),
        Row(
            SECTION,
            f"RSS growth over {n:,} events (from 20% of the run to its end)",
            "%",
            stats["long_run_growth_pct"],
            target=Target("<=", 10),
            note=f"{start:.0f} -> {end:.0f} MB",
        ),
    ]


def _child_main(kind: str, *args: str) -> None:
    configure_logging("bench-memory", "ERROR", stream=io.StringIO())
    if kind == "pending-memory":
        result = asyncio.run(pending_memory())
    elif kind == "pending-redis":
        result = asyncio.run(pending_redis(args[0]))
    else:
        result = asyncio.run(long_run(int(args[0])))
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child_main(*sys.argv[2:])
    else:
        from run import main

        main(["--only", "memory"])
