"""The bus's own cost per event: end to end and latency on the in-memory transport.

No network and no server: what remains is the bus (envelope encode and decode, dispatch,
trace context, concurrency limit, acknowledgement). The baseline is an ``asyncio.Queue``
between a producer and a consumer task calling the same trivial handler, the least any
in-process pub/sub can do.

    .venv/bin/python bench/run.py --only inmemory [--quick]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _clients import PAYLOAD, READ_COUNT, TOPIC
from _harness import Context, Row, Stat, percentile
from quantum_core import EventBus, MemoryTransport

TITLE = "in-memory transport"
SECTION = "In-memory transport: the bus's own cost"
RATES = (2_000, 10_000)
Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]


async def _bus(n: int, rate: float) -> tuple[float, list[int]]:
    bus = EventBus(MemoryTransport(), service_name="bench", read_count=READ_COUNT, concurrency=100)
    return await _drive(n, rate, bus, lambda batch: bus.publish_many(TOPIC, batch))


async def _queue(n: int, rate: float) -> tuple[float, list[int]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def publish(batch: list[dict[str, Any]]) -> None:
        for payload in batch:
            queue.put_nowait(payload)

    return await _drive(n, rate, queue, publish)


async def _drive(n: int, rate: float, sink: Any, publish: Publish) -> tuple[float, list[int]]:
    """Publish n events (as fast as possible, or paced at ``rate``) and time their handling."""
    now = time.monotonic_ns
    done = asyncio.Event()
    latencies: list[int] = []
    handled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        stamp = payload.get("t")
        if stamp is not None:
            latencies.append((now() - stamp) // 1000)
        if handled == n:
            done.set()

    consumer = None
    if isinstance(sink, EventBus):
        sink.subscribe(TOPIC, handle, name="handle")
        await sink.start()
    else:

        async def consume() -> None:
            while True:
                await handle(await sink.get())

        consumer = asyncio.create_task(consume())
    plain = [PAYLOAD] * READ_COUNT
    start = now()
    sent = 0
    while sent < n:
        if rate:
            due = min(n, int((now() - start) * rate / 1e9) + 1) - sent
            if due <= 0:
                await asyncio.sleep(1 / rate)
                continue
            k = min(due, READ_COUNT)
            await publish([{**PAYLOAD, "t": now()}] * k)
        else:
            k = min(READ_COUNT, n - sent)
            await publish(plain[:k])
            await asyncio.sleep(0)  # a publisher elsewhere yields; so does this one
        sent += k
    await asyncio.wait_for(done.wait(), 120)
    elapsed = (now() - start) / 1e9
    if consumer is not None:
        consumer.cancel()
    else:
        await sink.stop()
    return n / elapsed, latencies


async def measure(ctx: Context) -> dict[str, float]:
    n = ctx.size(200_000, 30_000)
    out: dict[str, float] = {}
    out["bus_rate"], _ = await _bus(n, 0)
    out["queue_rate"], _ = await _queue(n, 0)
    out["bus_us"], out["queue_us"] = 1e6 / out["bus_rate"], 1e6 / out["queue_rate"]
    for rate in RATES:
        count = rate * ctx.size(5, 1)
        for name, run in (("bus", _bus), ("queue", _queue)):
            _, latencies = await run(count, rate)
            latencies.sort()
            for label, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
                out[f"{name}_{rate}_{label}"] = percentile(latencies, q)
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    out = [
        Row(
            SECTION,
            "end to end, publish_many -> handler -> ack",
            "events/s",
            stats["bus_rate"],
            "asyncio.Queue",
            stats["queue_rate"],
        ),
        Row(
            SECTION,
            "time per event, end to end",
            "µs",
            stats["bus_us"],
            "asyncio.Queue",
            stats["queue_us"],
            note="the bus's overhead per event is the difference",
        ),
    ]
    for rate in RATES:
        for label in ("p50", "p99", "p99.9"):
            out.append(
                Row(
                    SECTION,
                    f"latency {label} at {rate:,}/s",
                    "µs",
                    stats[f"bus_{rate}_{label}"],
                    "asyncio.Queue",
                    stats[f"queue_{rate}_{label}"],
                )
            )
    return out


if __name__ == "__main__":
    from run import main

    main(["--only", "inmemory"])
