"""The lean XREADGROUP path (``redis/reader.py``): whole-reply RESP parsing, raw entries."""

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis._parsers.encoders import Encoder
from redis.asyncio.connection import DefaultParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.utils import HIREDIS_AVAILABLE

from quantum_core import EventBus, MemoryTransport, current_event, trace_context
from quantum_core.testing import eventually
from quantum_core.transports.redis.parser import WholeReplyParser
from quantum_core.transports.redis.reader import lean_reader, stream_entries


def _resp(value: Any) -> bytes:
    """RESP3 of ``value``: bytes as bulk strings, lists as arrays, dicts as maps."""
    if value is None:
        return b"_\r\n"
    if isinstance(value, bool):
        return b"#t\r\n" if value else b"#f\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(_resp(v) for v in value)
    if isinstance(value, dict):
        return b"%%%d\r\n" % len(value) + b"".join(_resp(k) + _resp(v) for k, v in value.items())
    raise TypeError(value)


async def _parse_chunks(
    chunks: list[bytes], *, decode: bool = False, replies: int = 1, disable_decoding: bool = False
) -> list[Any]:
    """Feed ``chunks`` to a parser one at a time, as a socket would; read ``replies`` replies."""
    stream = asyncio.StreamReader()
    parser = WholeReplyParser(socket_read_size=65536)
    parser.on_connect(SimpleNamespace(_reader=stream, encoder=Encoder("utf-8", "strict", decode)))

    async def feed() -> None:
        for chunk in chunks:
            stream.feed_data(chunk)
            await asyncio.sleep(0)
        stream.feed_eof()

    feeder = asyncio.create_task(feed())
    try:
        return [await parser.read_response(disable_decoding) for _ in range(replies)]
    finally:
        await feeder


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.binary(max_size=8), inner),
    max_leaves=30,
)


@given(value=_values, cuts=st.lists(st.integers(0, 2000), max_size=6))
async def test_any_reply_cut_anywhere_parses_to_the_same_value(value, cuts):
    data = _resp(value)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert await _parse_chunks(chunks) == [value]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"+OK\r\n", b"OK"),
        (b"$-1\r\n", None),  # RESP2 nil
        (b"*-1\r\n", None),  # RESP2 nil array (XREADGROUP timed out)
        (b"$0\r\n\r\n", b""),
        (b",3.5\r\n", 3.5),
        (b"(12345678901234567890123\r\n", 12345678901234567890123),
        (b"=8\r\ntxt:abcd\r\n", b"abcd"),
        (b"~2\r\n:1\r\n:2\r\n", [1, 2]),
    ],
)
async def test_each_resp_type(wire, expected):
    assert await _parse_chunks([wire]) == [expected]


async def test_an_error_reply_is_returned_for_the_connection_to_raise():
    (error,) = await _parse_chunks([b"-NOGROUP No such key or consumer group\r\n"])
    assert isinstance(error, ResponseError)
    assert "NOGROUP" in str(error)
    (blob,) = await _parse_chunks([b"!10\r\nERR broken\r\n"])
    assert isinstance(blob, ResponseError)


async def test_replies_that_share_a_read_are_parsed_one_by_one():
    assert await _parse_chunks([b"+OK\r\n:7\r\n$1\r\nx\r\n"], replies=3) == [b"OK", 7, b"x"]


async def test_strings_are_decoded_when_the_connection_decodes():
    assert await _parse_chunks([_resp([b"a", {b"k": b"\xc3\xbc"}])], decode=True) == [
        ["a", {"k": "ü"}]
    ]
    raw = await _parse_chunks([_resp([b"a"])], decode=True, disable_decoding=True)
    assert raw == [[b"a"]]


async def test_a_push_message_goes_to_the_push_handler_and_the_reply_follows():
    stream = asyncio.StreamReader()
    parser = WholeReplyParser(socket_read_size=65536)
    parser.on_connect(SimpleNamespace(_reader=stream, encoder=Encoder("utf-8", "strict", False)))
    pushed = []

    async def handler(message):
        pushed.append(message)

    parser.set_pubsub_push_handler(handler)
    stream.feed_data(b">2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n+OK\r\n")
    assert await parser.read_response() == b"OK"
    assert pushed == [[b"message", b"hi"]]


async def test_a_closed_connection_and_a_protocol_error_are_errors():
    with pytest.raises(RedisConnectionError):
        await _parse_chunks([b"$10\r\nabc"])
    with pytest.raises(InvalidResponse):
        await _parse_chunks([b"?what\r\n"])


def test_entries_of_a_resp2_and_a_resp3_reply_are_the_same():
    entries = [[b"1-0", [b"event", b"{}"]], [b"2-0", [b"event", b"[]"]]]
    expected = [(b"1-0", b"{}"), (b"2-0", b"[]")]
    assert stream_entries([[b"key", entries]], b"event") == expected  # RESP2
    assert stream_entries({b"key": entries}, b"event") == expected  # RESP3
    assert stream_entries(None, b"event") == []  # BLOCK timed out
    assert stream_entries({}, b"event") == []


def test_a_deleted_entry_and_a_foreign_entry():
    entries = [
        [b"1-0", None],
        [b"2-0", [b"other", b"x", b"more", b"y"]],
        [b"3-0", [b"a", b"1", b"event", b"{}"]],
    ]
    assert stream_entries([[b"key", entries]], b"event") == [
        (b"1-0", None),
        (b"2-0", repr({b"other": b"x", b"more": b"y"}).encode()),
        (b"3-0", b"{}"),
    ]


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_lean_reader_replaces_only_redis_py_s_python_parser(protocol):
    for chosen in (None, _AsyncRESP2Parser, _AsyncRESP3Parser):
        options = {} if chosen is None else {"parser_class": chosen}
        reader = redis.Redis(connection_pool=redis.ConnectionPool(protocol=protocol, **options))
        lean_reader(reader, fast=True)
        hiredis = chosen is None and HIREDIS_AVAILABLE  # left in place when installed
        expected = DefaultParser if hiredis else WholeReplyParser
        settings = reader.connection_pool.connection_kwargs
        assert settings.get("parser_class", DefaultParser) is expected
        assert reader.response_callbacks["XREADGROUP"]([[b"k", []]]) == [[b"k", []]]
    custom = type("Custom", (_AsyncRESP3Parser,), {})
    kept = redis.Redis(connection_pool=redis.ConnectionPool(protocol=protocol, parser_class=custom))
    lean_reader(kept, fast=True)
    assert kept.connection_pool.connection_kwargs["parser_class"] is custom


# Workers: handlers of a route without an ordering key share a few tasks.


async def test_quick_handlers_share_a_worker_and_each_sees_its_own_event():
    tasks, seen = set(), []

    async def handle(payload):  # never waits: the worker goes straight on to the next
        tasks.add(asyncio.current_task())
        seen.append((payload["n"], trace_context.get(), current_event().trace_id))

    transport = MemoryTransport()
    bus = EventBus(transport, service_name="svc", concurrency=50, read_count=100)
    bus.subscribe("t.x", handle, name="h")
    async with bus:
        for n in range(300):
            await bus.publish("t.x", {"n": n}, trace_id=f"trace-{n}")
        await eventually(lambda: len(seen) == 300)
        await eventually(lambda: bus._consumers[0].in_flight == 0)
        assert bus._consumers[0]._workers <= 2
        await eventually(lambda: transport._topics["t.x"]["svc:h"].pending == {})
    assert len(tasks) <= 10  # not one per event
    assert sorted(n for n, _, _ in seen) == list(range(300))
    assert all(trace == f"trace-{n}" == event_trace for n, trace, event_trace in seen)


async def test_a_retrying_event_holds_up_no_other_and_the_limit_still_holds():
    handled, running, peak = [], 0, 0

    async def handle(payload):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.01)
            if payload["n"] == 0 and current_event().attempt == 1:
                raise RuntimeError("first attempt fails")
            handled.append(payload["n"])
        finally:
            running -= 1

    bus = EventBus(MemoryTransport(), service_name="svc", concurrency=2, retry_backoff=0.3)
    bus.subscribe("t.x", handle, name="h")
    async with bus:
        await bus.publish_many("t.x", [{"n": n} for n in range(8)])
        await eventually(lambda: len(handled) == 7)
        assert 0 not in handled  # the others went on while it waited
        await eventually(lambda: len(handled) == 8)
    assert handled[-1] == 0
    assert peak == 2


async def test_stop_cancels_the_workers_counts_their_events_and_leaves_them_pending(log_lines):
    release = asyncio.Event()

    async def stuck(payload):
        await release.wait()

    transport = MemoryTransport()
    bus = EventBus(transport, service_name="svc", concurrency=3, stop_timeout=0.05)
    bus.subscribe("t.x", stuck, name="h")
    await bus.start()
    await bus.publish_many("t.x", [{"n": n} for n in range(3)])
    consumer = bus._consumers[0]
    await eventually(lambda: consumer.in_flight == 3)
    await bus.stop()
    (line,) = log_lines.named("event_handlers_cancelled_on_stop")
    assert line["cancelled"] == 3
    assert consumer.in_flight == 0
    assert consumer._workers == 0

    handled = []

    async def record(payload):
        handled.append(payload["n"])

    replacement = EventBus(transport, service_name="svc")
    replacement.subscribe("t.x", record, name="h")
    async with replacement:
        await eventually(lambda: len(handled) == 3)
    assert sorted(handled) == [0, 1, 2]
