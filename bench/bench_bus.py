"""EventBus throughput on Redis Streams, each figure beside raw redis-py doing the same work.

* publish one at a time: ``await bus.publish`` vs a raw ``XADD`` of the same envelope bytes.
* publish in batches of 100: ``publish_many`` vs a raw pipelined ``XADD`` batch.
* end to end (publish -> handler -> ack): the bus with ``publish_many`` and a no-op handler vs
  a raw pipelined publisher with a consumer reading ``XREADGROUP COUNT 100`` and acking each
  batch with one ``XACK``.

Redis is a redis-server of the benchmark's own on a free port (no persistence); payloads are
about 300 bytes; every figure is the median of RUNS runs (min and max beside it).

    .venv/bin/python bench/bench_bus.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from quantum_core import EventBus, RedisStreamsTransport, configure_logging

RESULTS = Path(__file__).with_name("results")
PAYLOAD = {
    "symbol": "BTCUSDT",
    "action": "LONG",
    "confidence": 0.8123,
    "entry_price": 50123.45,
    "tp_price": 51125.92,
    "sl_price": 49622.21,
    "strategy": "momentum-v2",
    "note": "x" * 120,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        client = redis.from_url(self.url)
        for _ in range(200):
            try:
                await client.ping()
                break
            except redis.ConnectionError:
                await asyncio.sleep(0.02)
        await client.aclose()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def raw_publish_one(url: str, n: int, data: bytes) -> float:
    client = redis.from_url(url)
    await client.delete("raw:one")
    start = time.perf_counter()
    for _ in range(n):
        await client.xadd("raw:one", {b"event": data}, maxlen=1_000_000, approximate=True)
    elapsed = time.perf_counter() - start
    await client.delete("raw:one")
    await client.aclose()
    return n / elapsed


async def bus_publish_one(url: str, n: int) -> float:
    async with RedisStreamsTransport(url, prefix="bench1") as transport:
        bus = EventBus(transport, service_name="bench")
        start = time.perf_counter()
        for _ in range(n):
            await bus.publish("signals", PAYLOAD)
        elapsed = time.perf_counter() - start
        await bus.stop()
    await _flush(url)
    return n / elapsed


async def raw_publish_batches(url: str, n: int, data: bytes) -> float:
    client = redis.from_url(url)
    start = time.perf_counter()
    for _ in range(n // 100):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.xadd("raw:batch", {b"event": data}, maxlen=1_000_000, approximate=True)
            await pipe.execute()
    elapsed = time.perf_counter() - start
    await client.delete("raw:batch")
    await client.aclose()
    return n / elapsed


async def bus_publish_batches(url: str, n: int) -> float:
    async with RedisStreamsTransport(url, prefix="bench2") as transport:
        bus = EventBus(transport, service_name="bench")
        batch = [PAYLOAD] * 100
        start = time.perf_counter()
        for _ in range(n // 100):
            await bus.publish_many("signals", batch)
        elapsed = time.perf_counter() - start
        await bus.stop()
    await _flush(url)
    return n / elapsed


async def raw_end_to_end(url: str, n: int, data: bytes) -> float:
    client = redis.from_url(url)
    reader = redis.from_url(url)
    await client.xgroup_create("raw:e2e", "g", id="$", mkstream=True)
    handled = 0

    async def consume() -> None:
        nonlocal handled
        while handled < n:
            reply = await reader.xreadgroup("g", "c", {"raw:e2e": ">"}, count=100, block=1000)
            for _, entries in reply:
                ids = [entry_id for entry_id, _ in entries]
                handled += len(ids)
                await client.xack("raw:e2e", "g", *ids)

    start = time.perf_counter()
    consumer = asyncio.create_task(consume())
    await raw_publish_batches_to(client, "raw:e2e", n, data)
    await consumer
    elapsed = time.perf_counter() - start
    await client.delete("raw:e2e")
    await client.aclose()
    await reader.aclose()
    return n / elapsed


async def raw_publish_batches_to(client: Any, key: str, n: int, data: bytes) -> None:
    for _ in range(n // 100):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.xadd(key, {b"event": data}, maxlen=1_000_000, approximate=True)
            await pipe.execute()


async def bus_end_to_end(url: str, n: int, read_count: int) -> float:
    done = asyncio.Event()
    handled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    async with (
        RedisStreamsTransport(url, prefix="bench3") as consumer_transport,
        RedisStreamsTransport(url, prefix="bench3") as publisher_transport,
    ):
        consumer = EventBus(
            consumer_transport, service_name="bench", read_count=read_count, concurrency=200
        )
        consumer.subscribe("signals", handle)
        publisher = EventBus(publisher_transport, service_name="pub")
        await consumer.start()
        batch = [PAYLOAD] * 100
        start = time.perf_counter()
        for _ in range(n // 100):
            await publisher.publish_many("signals", batch)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - start
        await consumer.stop()
    await _flush(url)
    return n / elapsed


async def _flush(url: str) -> None:
    client = redis.from_url(url)
    await client.flushall()
    await client.aclose()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def main(quick: bool) -> None:
    configure_logging("bench", "WARNING")
    runs, n_one, n_batch = (3, 2_000, 20_000) if quick else (5, 5_000, 50_000)
    server = Server()
    await server.ready()
    from quantum_core.bus.envelope import Envelope, encode

    data = encode(Envelope("0" * 32, "signals", PAYLOAD, "1" * 32, "t", "bench", {}))
    results: dict[str, dict[str, list[float]]] = {}

    def record(name: str, ours: float, raw: float) -> None:
        entry = results.setdefault(name, {"ours": [], "raw": []})
        entry["ours"].append(ours)
        entry["raw"].append(raw)

    try:
        for _ in range(runs):
            record(
                "publish one at a time",
                await bus_publish_one(server.url, n_one),
                await raw_publish_one(server.url, n_one, data),
            )
            record(
                "publish_many, batches of 100",
                await bus_publish_batches(server.url, n_batch),
                await raw_publish_batches(server.url, n_batch, data),
            )
            record(
                "end to end (read_count 100)",
                await bus_end_to_end(server.url, n_batch, 100),
                await raw_end_to_end(server.url, n_batch, data),
            )
            record(
                "end to end (read_count 10, default)",
                await bus_end_to_end(server.url, n_batch, 10),
                await raw_end_to_end(server.url, n_batch, data),
            )
    finally:
        server.stop()

    print(f"\n{'benchmark':38} {'ours/s':>16} {'raw redis-py/s':>16} {'ratio':>6}")
    table = {}
    for name, entry in results.items():
        ours, raw = summary(entry["ours"]), summary(entry["raw"])
        ratio = ours["median"] / raw["median"]
        table[name] = {"ours": ours, "raw": raw, "ratio": ratio}
        print(
            f"{name:38} {ours['median']:>10,.0f} ({ours['min']:,.0f}-{ours['max']:,.0f})"
            f"{raw['median']:>10,.0f} {ratio:>6.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bus.json").write_text(json.dumps({"runs": runs, "results": table}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
