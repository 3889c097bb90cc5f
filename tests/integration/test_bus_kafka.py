"""The Kafka transport on a real broker (Tansu): what the contract suite does not cover.

Bad input (an unreachable cluster, a missing extra, a record that is not an envelope), the
ordering key as the message key, commits that never pass a record still in flight, and the
exact figures of ``list_topics()`` (the contract check accepts None for each).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from quantum_core import EventBus, TransportError
from quantum_core.bus.abilities import GroupSummary, TopicSummary
from quantum_core.testing import EventRecorder, eventually
from quantum_core.testing.brokers import delete_kafka_namespace
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


async def test_topics_are_listed_with_exact_length_dead_letters_and_lag(kafka_url, kafka_prefix):
    """Five events in one batch (Tansu reports such a partition's end short), a handler holding
    them (its group's lag, pending unknown), a deleted dead letter, a dead-letter-only type."""
    url = f"{kafka_url}?prefix={kafka_prefix}&partitions=1&session_timeout=2"
    gate, holding = asyncio.Event(), asyncio.Event()

    async def hold(payload):
        holding.set()
        await gate.wait()

    async def refuse(payload):
        raise ValueError("set aside")

    bus = EventBus(url, service_name="svc", max_attempts=1)
    bus.subscribe("orders.eu.placed", hold, name="hold")
    bus.subscribe("orders.eu.refused", refuse, name="refuse")
    async with bus, KafkaTransport(kafka_url, prefix=kafka_prefix) as lister:
        try:
            await bus.publish_many("orders.eu.placed", [{"n": n} for n in range(5)])
            await bus.publish_many("orders.eu.refused", [{"n": n} for n in range(3)])

            async def three_letters() -> bool:
                return len(await lister.read_dead_letters("orders.eu.refused", 10)) == 3

            await eventually(three_letters, "three dead letters", timeout=10)
            (first_id, record), *_ = await lister.read_dead_letters("orders.eu.refused", 10)
            assert await lister.delete_dead_letters("orders.eu.refused", [first_id]) == 1
            await lister.restore_dead_letter("orders.eu.lost", record)
            await asyncio.wait_for(holding.wait(), 10)
            expected = [
                TopicSummary("orders.eu.lost", length=0, dead_letters=1),
                TopicSummary(
                    "orders.eu.placed", 5, 0, (GroupSummary("svc:hold", pending=None, lag=5),)
                ),
                TopicSummary(
                    "orders.eu.refused", 3, 2, (GroupSummary("svc:refuse", pending=None, lag=0),)
                ),
            ]
            seen: list[TopicSummary] = []

            async def listed() -> bool:  # the refusing group commits after its last letter
                seen[:] = await lister.list_topics()
                return seen == expected

            with contextlib.suppress(AssertionError):
                await eventually(listed, "the exact listing", timeout=10, interval=0.1)
            assert seen == expected
            assert len(await bus.dead_letters("orders.eu.refused")) == 2
        finally:
            gate.set()

        async def caught_up() -> bool:
            placed = (await lister.list_topics())[1]
            return placed.groups[0].lag == 0

        await eventually(caught_up, "the held group's lag back to 0", timeout=10)


async def test_topics_of_another_prefix_are_never_listed(kafka_url, kafka_prefix):
    """``p`` and ``p_b`` share a broker: each lists its own topics and groups only."""
    other = f"{kafka_prefix}_b"
    try:
        async with (
            KafkaTransport(kafka_url, prefix=kafka_prefix) as mine,
            KafkaTransport(kafka_url, prefix=other) as theirs,
        ):
            await asyncio.gather(
                mine.subscribe("x", group="svc:h", consumer="c1"),
                theirs.subscribe("x", group="svc:h", consumer="c2"),
            )
            await mine.publish("x", [b"1"])
            await theirs.publish("x", [b"1", b"2"])
            await theirs.publish("events.x", [b"1"])
            await theirs.restore_dead_letter("y", b"r")
            assert list(await mine.list_topics()) == [
                TopicSummary("x", 1, 0, (GroupSummary("svc:h", pending=None, lag=1),))
            ]
            listed = await theirs.list_topics()
            assert [(t.event_type, t.length, t.dead_letters) for t in listed] == [
                ("events.x", 1, 0),
                ("x", 2, 0),
                ("y", 0, 1),
            ]
            assert listed[1].groups == (GroupSummary("svc:h", pending=None, lag=2),)
    finally:
        await delete_kafka_namespace(kafka_url, other)


async def test_listing_an_unreachable_cluster_fails_naming_it():
    port = free_port()
    async with KafkaTransport(f"kafka://127.0.0.1:{port}", request_timeout=1) as transport:
        with pytest.raises(TransportError, match=rf"could not reach Kafka at 127\.0\.0\.1:{port}"):
            await transport.list_topics()


async def test_reading_dead_letters_of_an_unknown_event_type_creates_no_topic(
    kafka_url, kafka_prefix
):
    """A typo in ``dead_letters("...")`` (or the CLI's) lists nothing and leaves no topic."""
    async with KafkaTransport(kafka_url, prefix=kafka_prefix) as transport:
        bus = EventBus(transport, service_name="ops")
        assert await bus.dead_letters("orders.typo") == []
        assert await transport.delete_dead_letters("orders.typo", ["3"]) == 0
        assert await bus.purge_dead_letters("orders.typo") == 0
        assert list(await transport.list_topics()) == []
