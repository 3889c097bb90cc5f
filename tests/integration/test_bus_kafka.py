"""The Kafka transport on a real broker (Tansu): what the contract suite does not cover.

Bad input (an unreachable cluster, a missing extra, a record that is not an envelope), the
ordering key as the message key, and commits that never pass a record still in flight.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from quantum_core import EventBus, TransportError
from quantum_core.testing import EventRecorder, eventually
from quantum_core.transports.kafka import KafkaTransport
from service_helpers import free_port


def servers(url: str) -> list[str]:
    return url.split("://", 1)[1].split("?")[0].split(",")


async def test_an_unreachable_cluster_fails_start_naming_it():
    port = free_port()
    bus = EventBus(f"kafka://127.0.0.1:{port}?request_timeout=2", service_name="svc")

    async def handle(payload):
        pass

    bus.subscribe("orders.new", handle)
    started = time.monotonic()
    with pytest.raises(TransportError, match=rf"could not reach Kafka at 127\.0\.0\.1:{port}"):
        await bus.start()
    assert time.monotonic() - started < 6
    with pytest.raises(TransportError, match=rf"127\.0\.0\.1:{port}"):
        await bus.publish("orders.new", {"n": 1})
    await bus.stop()


async def test_a_cluster_that_never_answers_fails_start_within_the_bound():
    """A listener that accepts and then says nothing: start() gives up after request_timeout."""
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _, writer: accepted.append(writer), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    bus = EventBus(f"kafka://127.0.0.1:{port}?request_timeout=1.5", service_name="svc")

    async def handle(payload):
        pass

    bus.subscribe("orders.new", handle)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError, match=rf"127\.0\.0\.1:{port}"):
            await bus.start()
        assert time.monotonic() - started < 4
    finally:
        await bus.stop()
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()


def test_a_url_with_options_is_refused_by_the_constructor():
    with pytest.raises(ValueError, match="options as arguments"):
        KafkaTransport("kafka://127.0.0.1:9092?prefix=trading")


def test_a_missing_aiokafka_names_the_extra():
    code = (
        "import sys; sys.modules['aiokafka'] = None\n"
        "import quantum_core\n"
        "try:\n"
        "    quantum_core.transport_from_url('kafka://127.0.0.1:9092')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'quantum-core-sdk[kafka]'" in result.stdout


def test_import_quantum_core_loads_no_aiokafka():
    code = "import sys, quantum_core; print('aiokafka' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


async def test_a_record_that_is_not_an_envelope_is_dead_lettered_and_the_consumer_goes_on(
    kafka_url, kafka_prefix
):
    url = f"{kafka_url}?prefix={kafka_prefix}&session_timeout=2"
    recorder = EventRecorder()
    bus = EventBus(url, service_name="robust")
    bus.subscribe("orders.raw", recorder, name="handle")
    async with bus, KafkaTransport(kafka_url, prefix=kafka_prefix) as raw:
        await raw.publish("orders.raw", [b"\xff not json", b'{"v": 1}'])
        await bus.publish("orders.raw", {"fine": True})
        await recorder.wait_for(1)

        async def two_letters() -> bool:
            return len(await bus.dead_letters("orders.raw")) == 2

        await eventually(two_letters, "both malformed records dead-lettered", timeout=10)
        letters = await bus.dead_letters("orders.raw")
        assert sorted(letter.error_type for letter in letters) == ["MalformedEventError"] * 2
        assert '{"v": 1}' in [letter.original for letter in letters]
        assert recorder.payloads == [{"fine": True}]


async def test_the_ordering_key_is_the_message_key(kafka_url, kafka_prefix):
    payloads = [{"symbol": f"S{n % 5}", "n": n} for n in range(100)]
    async with KafkaTransport(kafka_url, prefix=kafka_prefix, partitions=3) as transport:
        publisher = EventBus(transport, service_name="md")
        await publisher.publish_many("md.tick", payloads, ordering_key="symbol")
        await publisher.publish("md.tick", {"symbol": "S1", "n": 100}, ordering_key="symbol")
    consumer = AIOKafkaConsumer(bootstrap_servers=servers(kafka_url), enable_auto_commit=False)
    await consumer.start()
    try:
        topic = f"{kafka_prefix}.events.md.tick"
        tps = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(tps)
        for tp in tps:
            await consumer.seek_to_beginning(tp)
        seen: dict[bytes, list[tuple[int, int]]] = {}
        deadline = time.monotonic() + 10
        while sum(map(len, seen.values())) < 101 and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    seen.setdefault(record.key, []).append((tp.partition, record.offset))
    finally:
        await consumer.stop()
    assert sorted(seen) == [f"S{n}".encode() for n in range(5)]
    for key, places in seen.items():
        assert len({partition for partition, _ in places}) == 1, f"{key!r} on several partitions"
    assert len(seen[b"S1"]) == 21


async def test_commits_stop_at_the_lowest_record_in_flight(kafka_url, kafka_prefix):
    """Records after a slow one finish first; the commit waits below the slow one."""
    url = f"{kafka_url}?prefix={kafka_prefix}&partitions=1&session_timeout=2"
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(payload):
        if payload["n"] == 0:
            await gate.wait()
        handled.append(payload["n"])

    bus = EventBus(url, service_name="slow", concurrency=4)
    bus.subscribe("jobs.run", handle, name="handle")
    async with bus, EventBus(url, service_name="pub") as publisher:
        await publisher.publish_many("jobs.run", [{"n": n} for n in range(10)])

        async def others_done() -> bool:
            return sorted(handled) == list(range(1, 10))

        await eventually(others_done, "events 1-9 handled while 0 is held", timeout=10)
        probe = AIOKafkaConsumer(
            bootstrap_servers=servers(kafka_url),
            group_id=f"{kafka_prefix}:slow:handle:jobs.run",
            enable_auto_commit=False,
        )
        await probe.start()
        try:
            tp = TopicPartition(f"{kafka_prefix}.events.jobs.run", 0)
            start = await probe.committed(tp)
            backlog = (await bus.backlog())["jobs.run -> handle"]
            assert backlog.pending == 1
            gate.set()

            async def committed_all() -> bool:
                return await probe.committed(tp) == start + 10

            await eventually(committed_all, "the commit past all ten", timeout=10)
        finally:
            await probe.stop()
