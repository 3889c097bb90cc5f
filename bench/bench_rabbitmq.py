"""EventBus throughput on RabbitMQ, each figure beside raw aio-pika doing the same work.

* publish one at a time: ``await bus.publish`` vs a raw confirmed ``exchange.publish`` of the
  same envelope bytes.
* publish in batches of 100: ``publish_many`` vs 100 raw publishes awaited together (their
  confirms gathered).
* end to end (publish -> handler -> ack): the bus with ``publish_many`` and a no-op handler vs
  raw batches and a raw consumer (basic.consume, same prefetch) acking each message.

Both sides publish to a topic exchange with the same queues bound: the topic's history
stream (the transport's default) and, end to end, the group's quorum queue. ``--no-history``
measures both without the stream. The broker is the shared one at ``QUANTUM_BENCH_AMQP_URL``
(default ``amqp://guest:guest@127.0.0.1:5672/``); every name is under a prefix of the run's
own, deleted afterwards. Every figure is the median of RUNS runs (min and max beside it).

    .venv/bin/python bench/bench_rabbitmq.py [--quick] [--no-history]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from _clients import PAYLOAD  # the same ~300-byte event as every bench
from quantum_core import EventBus, configure_logging
from quantum_core.bus.envelope import Envelope, encode
from quantum_core.transports.rabbitmq import RabbitMQTransport
from quantum_core.transports.rabbitmq.history import stream_arguments
from quantum_core.transports.rabbitmq.names import group_queue, history_stream

RESULTS = Path(__file__).with_name("results")
URL = os.environ.get("QUANTUM_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
HISTORY_BYTES = 256 * 1024 * 1024
TOPIC = "signals"


class Namespace:
    """A prefix of the run's own and the queues declared under it, deleted at the end."""

    def __init__(self, history: bool) -> None:
        self.prefix = f"qc-bench-{uuid.uuid4().hex[:8]}"
        self.history = history
        self.queues: set[str] = set()

    def transport(self) -> RabbitMQTransport:
        transport = RabbitMQTransport(
            URL, prefix=self.prefix, history_max_bytes=HISTORY_BYTES if self.history else 0
        )
        transport._state.declared = self.queues
        return transport

    async def raw_topology(
        self, channel: aio_pika.abc.AbstractChannel, group: str | None
    ) -> tuple[aio_pika.abc.AbstractExchange, aio_pika.abc.AbstractQueue | None]:
        """The exchange, history stream and group queue the transport would declare."""
        exchange = await channel.declare_exchange(
            self.prefix, aio_pika.ExchangeType.TOPIC, durable=True
        )
        if self.history:
            name = history_stream(self.prefix, TOPIC)
            self.queues.add(name)
            stream = await channel.declare_queue(
                name, durable=True, arguments=stream_arguments(HISTORY_BYTES, None)
            )
            await stream.bind(exchange, TOPIC)
        if group is None:
            return exchange, None
        name = group_queue(self.prefix, TOPIC, group)
        self.queues.add(name)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, TOPIC)
        return exchange, queue

    async def delete(self) -> None:
        connection = await aio_pika.connect(URL)
        async with connection:
            channel = await connection.channel()
            for name in self.queues:
                await channel.queue_delete(name)
            await channel.exchange_delete(self.prefix)


def message(data: bytes, n: int) -> aio_pika.Message:
    return aio_pika.Message(
        data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=f"raw-{n}"
    )


async def raw_publish_one(ns: Namespace, n: int, data: bytes) -> float:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange, _ = await ns.raw_topology(channel, None)
        start = time.perf_counter()
        for i in range(n):
            await exchange.publish(message(data, i), TOPIC, mandatory=False)
        return n / (time.perf_counter() - start)


async def bus_publish_one(ns: Namespace, n: int) -> float:
    async with ns.transport() as transport:
        bus = EventBus(transport, service_name="bench")
        await bus.publish(TOPIC, PAYLOAD)  # declares, like the raw side before its clock
        start = time.perf_counter()
        for _ in range(n):
            await bus.publish(TOPIC, PAYLOAD)
        elapsed = time.perf_counter() - start
        await bus.stop()
    return n / elapsed


async def raw_publish_batches(ns: Namespace, n: int, data: bytes) -> float:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange, _ = await ns.raw_topology(channel, None)
        start = time.perf_counter()
        await _raw_batches(exchange, n, data)
        return n / (time.perf_counter() - start)


async def _raw_batches(exchange: aio_pika.abc.AbstractExchange, n: int, data: bytes) -> None:
    for first in range(0, n, 100):
        await asyncio.gather(
            *(
                exchange.publish(message(data, i), TOPIC, mandatory=False)
                for i in range(first, first + 100)
            )
        )


async def bus_publish_batches(ns: Namespace, n: int) -> float:
    async with ns.transport() as transport:
        bus = EventBus(transport, service_name="bench")
        await bus.publish(TOPIC, PAYLOAD)
        batch = [PAYLOAD] * 100
        start = time.perf_counter()
        for _ in range(n // 100):
            await bus.publish_many(TOPIC, batch)
        elapsed = time.perf_counter() - start
        await bus.stop()
    return n / elapsed


async def raw_end_to_end(ns: Namespace, n: int, data: bytes, prefetch: int) -> float:
    publishing = await aio_pika.connect(URL)
    consuming = await aio_pika.connect(URL)
    async with publishing, consuming:
        channel = await publishing.channel(publisher_confirms=True)
        exchange, _ = await ns.raw_topology(channel, "raw:handle")
        consumer_channel = await consuming.channel()
        await consumer_channel.set_qos(prefetch_count=prefetch)
        queue = await consumer_channel.get_queue(group_queue(ns.prefix, TOPIC, "raw:handle"))
        handled = 0
        done = asyncio.Event()

        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal handled
            await incoming.ack()
            handled += 1
            if handled == n:
                done.set()

        await queue.consume(on_message)
        start = time.perf_counter()
        await _raw_batches(exchange, n, data)
        await asyncio.wait_for(done.wait(), 300)
        return n / (time.perf_counter() - start)


async def bus_end_to_end(ns: Namespace, n: int, read_count: int, concurrency: int) -> float:
    done = asyncio.Event()
    handled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    async with ns.transport() as consumer_transport, ns.transport() as publisher_transport:
        consumer = EventBus(
            consumer_transport, service_name="bench", read_count=read_count, concurrency=concurrency
        )
        consumer.subscribe(TOPIC, handle, name="handle")
        publisher = EventBus(publisher_transport, service_name="pub")
        await consumer.start()
        await publisher.publish_many(TOPIC, [])
        batch = [PAYLOAD] * 100
        start = time.perf_counter()
        for _ in range(n // 100):
            await publisher.publish_many(TOPIC, batch)
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        await consumer.stop()
        await publisher.stop()
    return n / elapsed


# -- the runner's interface (bench/run.py, _harness.py) ---------------------------------------

TITLE = "RabbitMQ (the shared broker, quorum queues, history stream on)"
SECTION = "Event bus on RabbitMQ"


async def _pair(ours: Any, raw: Any, first: str) -> tuple[float, float]:
    """Measure both sides on fresh names, in the given order; return (ours, raw)."""
    figures: dict[str, float] = {}
    order = (("ours", ours), ("raw", raw)) if first == "ours" else (("raw", raw), ("ours", ours))
    for side, run in order:
        ns = Namespace(history=True)
        try:
            figures[side] = await run(ns)
        finally:
            await ns.delete()
    return figures["ours"], figures["raw"]


_turn = 0


async def measure(ctx: Any) -> dict[str, float]:
    """One run of every figure; who goes first alternates between runs (a shared broker)."""
    global _turn
    first = "ours" if _turn % 2 == 0 else "raw"
    _turn += 1
    n_one, n_batch = ctx.size(2_000, 500), ctx.size(20_000, 5_000)
    data = encode(Envelope("0" * 32, TOPIC, PAYLOAD, "1" * 32, "t", "bench", {}))
    figures: dict[str, float] = {}
    for name, ours, raw in (
        (
            "publish_one",
            lambda ns: bus_publish_one(ns, n_one),
            lambda ns: raw_publish_one(ns, n_one, data),
        ),
        (
            "publish_many",
            lambda ns: bus_publish_batches(ns, n_batch),
            lambda ns: raw_publish_batches(ns, n_batch, data),
        ),
        (
            "e2e",
            lambda ns: bus_end_to_end(ns, n_batch, 100, 64),  # the bus's defaults
            lambda ns: raw_end_to_end(ns, n_batch, data, 256),  # the prefetch they give
        ),
    ):
        figures[name], figures[f"{name}_raw"] = await _pair(ours, raw, first)
    return figures


def rows(stats: dict[str, Any], ctx: Any) -> list[Any]:
    from _harness import Row, Target

    at_least = Target(">=", 0.8, "ratio")
    return [
        Row(
            SECTION,
            "publish one at a time (`await bus.publish` vs a confirmed `exchange.publish`)",
            "events/s",
            stats["publish_one"],
            "raw aio-pika, confirmed",
            stats["publish_one_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "`publish_many`, batches of 100 (vs 100 confirmed publishes, one gather)",
            "events/s",
            stats["publish_many"],
            "raw aio-pika x100",
            stats["publish_many_raw"],
            at_least,
        ),
        Row(
            SECTION,
            "end to end, default `read_count` 100, concurrency 64 (publish -> handler -> ack)",
            "events/s",
            stats["e2e"],
            "raw basic.consume, prefetch 256, ack each",
            stats["e2e_raw"],
            at_least,
        ),
    ]


# -- standalone: python bench/bench_rabbitmq.py -----------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def main(quick: bool, history: bool) -> None:
    configure_logging("bench", "WARNING")
    runs, n_one, n_batch = (3, 500, 5_000) if quick else (5, 2_000, 20_000)
    data = encode(Envelope("0" * 32, TOPIC, PAYLOAD, "1" * 32, "t", "bench", {}))
    results: dict[str, dict[str, list[float]]] = {}

    def record(name: str, ours: float, raw: float) -> None:
        entry = results.setdefault(name, {"ours": [], "raw": []})
        entry["ours"].append(ours)
        entry["raw"].append(raw)

    for run in range(runs):
        for name, ours, raw in (
            (
                "publish one at a time",
                lambda ns: bus_publish_one(ns, n_one),
                lambda ns: raw_publish_one(ns, n_one, data),
            ),
            (
                "publish_many, batches of 100",
                lambda ns: bus_publish_batches(ns, n_batch),
                lambda ns: raw_publish_batches(ns, n_batch, data),
            ),
            (
                "end to end (read_count 10, concurrency 16)",
                lambda ns: bus_end_to_end(ns, n_batch, 10, 16),
                lambda ns: raw_end_to_end(ns, n_batch, data, 48),
            ),
        ):
            figures: dict[str, float] = {}
            # Who goes first alternates: a shared broker's load drifts within a run.
            order = (
                (("ours", ours), ("raw", raw)) if run % 2 == 0 else (("raw", raw), ("ours", ours))
            )
            for side, measure in order:
                ns = Namespace(history)
                try:
                    figures[side] = await measure(ns)
                finally:
                    await ns.delete()
            record(name, figures["ours"], figures["raw"])

    label = "with history stream" if history else "no history stream"
    print(f"\nRabbitMQ, {label}, median of {runs} runs")
    print(f"{'benchmark':44} {'ours/s':>22} {'raw aio-pika/s':>22} {'ratio':>6}")
    table = {}
    for name, entry in results.items():
        ours, raw = summary(entry["ours"]), summary(entry["raw"])
        ratios = [o / r for o, r in zip(entry["ours"], entry["raw"], strict=True)]
        ratio = ours["median"] / raw["median"]
        table[name] = {
            "ours": ours,
            "raw": raw,
            "ratio": ratio,
            "ratio_per_run": summary(ratios),
        }
        print(
            f"{name:44} {ours['median']:>8,.0f} ({ours['min']:,.0f}-{ours['max']:,.0f})"
            f" {raw['median']:>8,.0f} ({raw['min']:,.0f}-{raw['max']:,.0f}) {ratio:>6.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"rabbitmq{'' if history else '-no-history'}.json"
    out.write_text(json.dumps({"runs": runs, "history": history, "results": table}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-history", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, not arguments.no_history))
