"""EventBus throughput on NATS JetStream, each figure beside raw nats-py doing the same work.

* publish one at a time: ``await bus.publish`` vs a raw ``await js.publish`` of the same
  envelope bytes (each waits for JetStream's PubAck).
* publish in batches of 100: ``publish_many`` vs 100 raw ``js.publish_async`` and one
  ``gather`` of their PubAcks.
* end to end (publish -> handler -> ack): the bus with ``publish_many`` and a no-op handler vs
  a raw publisher of the same batches with a raw pull consumer (``fetch(100)``, then
  ``msg.ack()`` for each message).

NATS is a nats-server of the benchmark's own on a free port, JetStream on disk in a
temporary directory; payloads are about 300 bytes; every figure is the median of RUNS runs
(min and max beside it), ours and raw interleaved in each run.

    .venv/bin/python bench/bench_nats.py [--quick]

It also speaks the runner's interface (``TITLE``, ``measure``, ``rows``; see _harness.py),
so ``bench/run.py --only nats`` runs it once it is listed in run.py's MODULES.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.js import api

from _clients import PAYLOAD  # the same ~300-byte event as every bench
from _harness import free_port, started_once
from quantum_core import EventBus, NatsJetStreamTransport, configure_logging

RESULTS = Path(__file__).with_name("results")


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = tempfile.TemporaryDirectory(prefix="bench-nats-")
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.process = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        for _ in range(500):
            try:
                client = await nats.connect(
                    self.url, allow_reconnect=False, connect_timeout=1, error_cb=_quiet
                )
                await client.jetstream().account_info()
                await client.close()
                return
            except Exception:
                await asyncio.sleep(0.02)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.store.cleanup()


async def _quiet(error: Exception) -> None:
    """nats-py logs every refused connect while the server starts; that is expected here."""


def prefix() -> str:
    return f"bench_{uuid.uuid4().hex[:8]}"


async def raw_stream(js: Any, name: str) -> str:
    """The same stream the transport makes: file storage, limits per subject."""
    await js.add_stream(
        name=name,
        subjects=[f"{name}.events.>"],
        storage=api.StorageType.FILE,
        max_msgs_per_subject=1_000_000,
    )
    return f"{name}.events.signals"


async def drop(url: str, name: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(name)
    finally:
        await client.close()


# -- publish one at a time --------------------------------------------------------------------


async def raw_publish_one(url: str, n: int, data: bytes) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    name = prefix()
    subject = await raw_stream(js, name)
    start = time.perf_counter()
    for _ in range(n):
        await js.publish(subject, data)
    elapsed = time.perf_counter() - start
    await js.delete_stream(name)
    await client.close()
    return n / elapsed


async def bus_publish_one(url: str, n: int) -> float:
    name = prefix()
    async with NatsJetStreamTransport(url, prefix=name) as transport:
        bus = EventBus(transport, service_name="bench")
        await bus.publish("signals", PAYLOAD)  # connects and makes the stream, untimed
        start = time.perf_counter()
        for _ in range(n):
            await bus.publish("signals", PAYLOAD)
        elapsed = time.perf_counter() - start
        await bus.stop()
    await drop(url, name)
    return n / elapsed


# -- publish in batches of 100 ----------------------------------------------------------------


async def raw_publish_batch(js: Any, subject: str, data: bytes) -> None:
    futures = [await js.publish_async(subject, data) for _ in range(100)]
    await asyncio.gather(*futures)


async def raw_publish_batches(url: str, n: int, data: bytes) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    name = prefix()
    subject = await raw_stream(js, name)
    await raw_publish_batch(js, subject, data)  # the reply subscription, untimed
    start = time.perf_counter()
    for _ in range(n // 100):
        await raw_publish_batch(js, subject, data)
    elapsed = time.perf_counter() - start
    await js.delete_stream(name)
    await client.close()
    return n / elapsed


async def bus_publish_batches(url: str, n: int) -> float:
    name = prefix()
    async with NatsJetStreamTransport(url, prefix=name) as transport:
        bus = EventBus(transport, service_name="bench")
        batch = [PAYLOAD] * 100
        await bus.publish_many("signals", batch)
        start = time.perf_counter()
        for _ in range(n // 100):
            await bus.publish_many("signals", batch)
        elapsed = time.perf_counter() - start
        await bus.stop()
    await drop(url, name)
    return n / elapsed


# -- end to end -------------------------------------------------------------------------------


async def raw_end_to_end(url: str, n: int, data: bytes) -> float:
    client = await nats.connect(url)
    reader = await nats.connect(url)
    js, reader_js = client.jetstream(), reader.jetstream()
    name = prefix()
    subject = await raw_stream(js, name)
    await raw_publish_batch(js, f"{name}.events.warmup", data)
    pull = await reader_js.pull_subscribe(
        subject,
        durable="g",
        stream=name,
        config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.NEW,
            max_ack_pending=20_000,
            ack_wait=30,
        ),
    )
    handled = 0

    async def consume() -> None:
        nonlocal handled
        while handled < n:
            try:
                messages = await pull.fetch(100, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for msg in messages:
                await msg.ack()
            handled += len(messages)

    start = time.perf_counter()
    consumer = asyncio.create_task(consume())
    for _ in range(n // 100):
        await raw_publish_batch(js, subject, data)
    await consumer
    elapsed = time.perf_counter() - start
    await js.delete_stream(name)
    await reader.close()
    await client.close()
    return n / elapsed


async def bus_end_to_end(url: str, n: int, read_count: int) -> float:
    done = asyncio.Event()
    handled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    name = prefix()
    async with (
        NatsJetStreamTransport(url, prefix=name) as consumer_transport,
        NatsJetStreamTransport(url, prefix=name) as publisher_transport,
    ):
        consumer = EventBus(
            consumer_transport, service_name="bench", read_count=read_count, concurrency=200
        )
        consumer.subscribe("signals", handle)
        publisher = EventBus(publisher_transport, service_name="pub")
        await publisher.publish_many("warmup", [PAYLOAD] * 100)
        await consumer.start()
        batch = [PAYLOAD] * 100
        start = time.perf_counter()
        for _ in range(n // 100):
            await publisher.publish_many("signals", batch)
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        await consumer.stop()
    await drop(url, name)
    return n / elapsed


# -- the runner's interface (bench/run.py, _harness.py) ---------------------------------------

TITLE = "NATS JetStream (own nats-server)"
SECTION = "Event bus on NATS JetStream"


def _shared_server() -> Server:
    """One nats-server for every run of this module in a runner process, stopped at exit."""
    server: Server = started_once("nats-server", Server)
    return server


async def measure(ctx: Any) -> dict[str, float]:
    """One run of every figure, ours and raw taking turns (see bench/_harness.py)."""
    server = _shared_server()
    await server.ready()
    n_one, n_batch = ctx.size(5_000, 2_000), ctx.size(50_000, 20_000)
    data = _envelope()
    return {
        "publish_one": await bus_publish_one(server.url, n_one),
        "publish_one_raw": await raw_publish_one(server.url, n_one, data),
        "publish_many": await bus_publish_batches(server.url, n_batch),
        "publish_many_raw": await raw_publish_batches(server.url, n_batch, data),
        "e2e_100": await bus_end_to_end(server.url, n_batch, 100),
        "e2e_100_raw": await raw_end_to_end(server.url, n_batch, data),
        "e2e_10": await bus_end_to_end(server.url, n_batch, 10),
        "e2e_10_raw": await raw_end_to_end(server.url, n_batch, data),
    }


def rows(stats: dict[str, Any], ctx: Any) -> list[Any]:
    from _harness import Row, Target

    at_least = Target(">=", 0.8, "ratio")
    return [
        Row(
            SECTION,
            "publish one at a time (`await bus.publish` vs `js.publish`)",
            "events/s",
            stats["publish_one"],
            "raw js.publish",
            stats["publish_one_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "`publish_many`, batches of 100 (vs 100 `js.publish_async`, one gather)",
            "events/s",
            stats["publish_many"],
            "raw publish_async x100",
            stats["publish_many_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "end to end, `read_count` 100, the default (publish -> handler -> ack)",
            "events/s",
            stats["e2e_100"],
            "raw fetch(100) + ack",
            stats["e2e_100_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "end to end, `read_count` 10 (the guide's `READ_COUNT`)",
            "events/s",
            stats["e2e_10"],
            "raw fetch(100) + ack",
            stats["e2e_10_raw"],
            at_least,
        ),
    ]


def _envelope() -> bytes:
    from quantum_core.bus.envelope import Envelope, encode

    return encode(Envelope("0" * 32, "signals", PAYLOAD, "1" * 32, "t", "bench", {}))


# -- standalone: python bench/bench_nats.py ---------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def main(quick: bool) -> None:
    configure_logging("bench", "WARNING")
    runs, n_one, n_batch = (3, 2_000, 20_000) if quick else (5, 5_000, 50_000)
    server = Server()
    await server.ready()
    data = _envelope()
    results: dict[str, dict[str, list[float]]] = {}

    def record(name: str, ours: float, raw: float) -> None:
        entry = results.setdefault(name, {"ours": [], "raw": []})
        entry["ours"].append(ours)
        entry["raw"].append(raw)
        print(f"  {name}: ours {ours:,.0f}/s raw {raw:,.0f}/s ({ours / raw:.2f})", flush=True)

    try:
        for run in range(runs):
            print(f"run {run + 1}/{runs}", flush=True)
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

    print(f"\n{'benchmark':38} {'ours/s':>24} {'raw nats-py/s':>24} {'ratio':>6}")
    table = {}
    for name, entry in results.items():
        ours, raw = summary(entry["ours"]), summary(entry["raw"])
        ratio = ours["median"] / raw["median"]
        table[name] = {"ours": ours, "raw": raw, "ratio": ratio}
        print(
            f"{name:38} {ours['median']:>9,.0f} ({ours['min']:,.0f}-{ours['max']:,.0f})"
            f" {raw['median']:>9,.0f} ({raw['min']:,.0f}-{raw['max']:,.0f}) {ratio:>6.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nats.json").write_text(
        json.dumps({"runs": runs, "cpus": os.cpu_count(), "results": table}, indent=2) + "\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
