"""Typed handlers (a 6-field pydantic model) against dict handlers, end to end, same run.

The publisher sends the same payload dict either way (``publish_many``, batches of 100); one
subscription handles every event with a trivial handler, which takes either the dict or a
6-field model the bus validates first. On the memory transport what differs is the bus's own
cost; on Redis, the share validation takes of a whole trip. Dict and typed runs alternate,
so both see the same machine.

    .venv/bin/python bench/run.py --only typed [--quick]
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from pydantic import BaseModel

from _clients import READ_COUNT
from _harness import Context, Row, Stat, Target
from quantum_core import EventBus, MemoryTransport, RedisStreamsTransport

TITLE = "typed handlers"
SECTION = "Typed handlers: a 6-field model vs the payload dict"
TOPIC = "ai.signal.generated"
PAYLOAD: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "action": "LONG",
    "confidence": 0.8123,
    "entry_price": 50123.45,
    "tp_price": 51125.92,
    "sl_price": 49622.21,
}
_keys = itertools.count()
_runs = itertools.count()


class Signal(BaseModel):
    symbol: str
    action: str
    confidence: float
    entry_price: float
    tp_price: float
    sl_price: float


async def _run(transport: Any, n: int, typed: bool) -> float:
    """Events per second, from the first publish to the last handler's return."""
    bus = EventBus(transport, service_name="bench", read_count=READ_COUNT, concurrency=100)
    done = asyncio.Event()
    handled = 0

    async def on_dict(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    async def on_model(signal: Signal) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    bus.subscribe(TOPIC, on_model if typed else on_dict, name="handle")
    batch = [PAYLOAD] * READ_COUNT
    async with bus:
        start = time.perf_counter()
        for sent in range(0, n, READ_COUNT):
            await bus.publish_many(TOPIC, batch[: min(READ_COUNT, n - sent)])
            await asyncio.sleep(0)  # a publisher elsewhere yields; so does this one
        await asyncio.wait_for(done.wait(), 120)
        return n / (time.perf_counter() - start)


async def measure(ctx: Context) -> dict[str, float]:
    out: dict[str, float] = {}
    n_memory, n_redis = ctx.size(100_000, 20_000), ctx.size(30_000, 5_000)
    order = (False, True) if next(_runs) % 2 else (True, False)  # neither always goes first
    for typed in order:
        out[f"memory_{'typed' if typed else 'dict'}"] = await _run(
            MemoryTransport(), n_memory, typed
        )
    for typed in order:
        prefix = f"bench-typed-{next(_keys)}"
        async with RedisStreamsTransport(ctx.url, prefix=prefix) as transport:
            out[f"redis_{'typed' if typed else 'dict'}"] = await _run(transport, n_redis, typed)
        ctx.server and ctx.server.flush()
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    return [
        Row(
            SECTION,
            f"{transport}: publish_many -> typed handler (6-field model) -> ack",
            "events/s",
            stats[f"{key}_typed"],
            "the same with a dict handler",
            stats[f"{key}_dict"],
            Target(">=", 0.8, "ratio"),
        )
        for transport, key in (("memory", "memory"), ("Redis Streams", "redis"))
    ]
