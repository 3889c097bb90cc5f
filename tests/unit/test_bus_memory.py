"""The EventBus on the in-memory transport: delivery, fan-out, sharing, failures, bad input."""

import asyncio
import functools
import json
import math

import pytest
from pydantic import BaseModel

from quantum_core import (
    EventBus,
    MemoryTransport,
    current_event,
    get_logger,
    trace_context,
)
from quantum_core.bus.transport import Delivery
from quantum_core.testing import eventually


class Recorder:
    def __init__(self):
        self.payloads = []
        self.traces = []
        self.events = []

    async def __call__(self, payload):
        self.payloads.append(payload)
        self.traces.append(trace_context.get())
        self.events.append(current_event())


async def test_publish_delivers_the_payload_unchanged_with_trace_and_event_info():
    received = Recorder()
    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("ai.signal.generated", received)
    async with bus:
        payload = {"symbol": "BTCUSDT", "confidence": 0.85, "nested": {"list": [1, "two", None]}}
        event_id = await bus.publish("ai.signal.generated", payload, trace_id="abc123")
        await eventually(lambda: received.payloads)
    assert received.payloads == [payload]
    assert received.traces == ["abc123"]
    info = received.events[0]
    assert info.id == event_id
    assert info.type == "ai.signal.generated"
    assert info.trace_id == "abc123"
    assert info.source == "svc"
    assert info.attempt == 1


async def test_handler_gets_its_own_copy_of_the_payload():
    first, second = Recorder(), Recorder()
    transport = MemoryTransport()
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", first, name="first")
    bus.subscribe("t.x", second, name="second")
    payload = {"items": [1]}
    async with bus:
        await bus.publish("t.x", payload)
        await eventually(lambda: first.payloads and second.payloads)
    first.payloads[0]["items"].append(2)
    assert second.payloads[0] == {"items": [1]}
    assert payload == {"items": [1]}


async def test_trace_id_comes_from_the_argument_then_the_context_then_a_new_one():
    received = Recorder()
    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", received)
    async with bus:
        await bus.publish("t.x", {"n": 1}, trace_id="explicit")
        with trace_context.scope("from-context"):
            await bus.publish("t.x", {"n": 2})
        await bus.publish("t.x", {"n": 3})
        await eventually(lambda: len(received.payloads) == 3)
    by_n = {p["n"]: t for p, t in zip(received.payloads, received.traces, strict=True)}
    assert by_n[1] == "explicit"
    assert by_n[2] == "from-context"
    assert len(by_n[3]) == 32
    assert trace_context.get() is None  # publishing never changed the caller's trace


async def test_pydantic_model_payload_arrives_as_its_json_dict():
    class Tick(BaseModel):
        symbol: str
        price: float

    received = Recorder()
    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("market.data.update", received)
    async with bus:
        await bus.publish("market.data.update", Tick(symbol="ETHUSDT", price=3000.5))
        await eventually(lambda: received.payloads)
    assert received.payloads == [{"symbol": "ETHUSDT", "price": 3000.5}]


async def test_every_service_and_every_handler_gets_every_event():
    transport = MemoryTransport()
    risk_a, risk_b, audit = Recorder(), Recorder(), Recorder()
    risk = EventBus(transport, service_name="risk")
    risk.subscribe("ai.signal.generated", risk_a, name="a")
    risk.subscribe("ai.signal.generated", risk_b, name="b")
    auditor = EventBus(transport, service_name="audit")
    auditor.subscribe("ai.signal.generated", audit)
    publisher = EventBus(transport, service_name="ai")
    async with risk, auditor, publisher:
        for n in range(20):
            await publisher.publish("ai.signal.generated", {"n": n})
        await eventually(lambda: all(len(r.payloads) == 20 for r in (risk_a, risk_b, audit)))
    for recorder in (risk_a, risk_b, audit):
        assert sorted(p["n"] for p in recorder.payloads) == list(range(20))


async def test_replicas_of_a_service_share_the_work_without_duplicates():
    transport = MemoryTransport()
    handled: list[tuple[str, int]] = []

    def replica(name):
        async def handle(payload):
            handled.append((name, payload["n"]))
            await asyncio.sleep(0.001)

        bus = EventBus(transport, service_name="execution", read_count=5)
        bus.subscribe("risk.signal.approved", handle, name="handle")
        return bus

    replicas = [replica(f"r{i}") for i in range(3)]
    publisher = EventBus(transport, service_name="risk")
    async with replicas[0], replicas[1], replicas[2], publisher:
        await publisher.publish_many("risk.signal.approved", [{"n": n} for n in range(300)])
        await eventually(lambda: len(handled) >= 300)
        await asyncio.sleep(0.05)
    numbers = [n for _, n in handled]
    assert sorted(numbers) == list(range(300))  # each exactly once
    workers = {name for name, _ in handled}
    assert len(workers) == 3


async def test_a_service_receives_only_events_published_after_it_subscribed():
    transport = MemoryTransport()
    publisher = EventBus(transport, service_name="pub")
    await publisher.publish("t.x", {"n": "before anyone listened"})
    received = Recorder()
    consumer = EventBus(transport, service_name="late")
    consumer.subscribe("t.x", received)
    async with consumer:
        await publisher.publish("t.x", {"n": "after"})
        await eventually(lambda: received.payloads)
        await asyncio.sleep(0.02)
    assert received.payloads == [{"n": "after"}]


async def test_event_is_acknowledged_only_after_its_handler_returned():
    transport = MemoryTransport()
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(payload):
        started.set()
        await release.wait()

    first = EventBus(transport, service_name="exec", stop_timeout=0.05)
    first.subscribe("t.x", slow, name="handler")
    await first.start()
    await EventBus(transport, service_name="pub").publish("t.x", {"order": 1})
    await asyncio.wait_for(started.wait(), 2)
    # The replica dies mid-handler: stop() cancels the handler after stop_timeout.
    await first.stop()

    received = Recorder()
    second = EventBus(transport, service_name="exec")
    second.subscribe("t.x", received, name="handler")
    async with second:
        await eventually(lambda: received.payloads)
    assert received.payloads == [{"order": 1}]
    assert received.events[0].attempt == 2


async def test_stop_lets_handlers_in_flight_finish_and_acknowledges_them():
    transport = MemoryTransport()
    finished = []

    async def handler(payload):
        await asyncio.sleep(0.05)
        finished.append(payload["n"])

    bus = EventBus(transport, service_name="svc", stop_timeout=5)
    bus.subscribe("t.x", handler, name="h")
    await bus.start()
    await bus.publish_many("t.x", [{"n": n} for n in range(5)])
    await eventually(lambda: bus._consumers[0].in_flight == 5)
    await bus.stop()
    assert sorted(finished) == list(range(5))

    again = Recorder()
    replacement = EventBus(transport, service_name="svc")
    replacement.subscribe("t.x", again, name="h")
    async with replacement:
        await asyncio.sleep(0.05)
    assert again.payloads == []  # nothing left pending, nothing redelivered


async def test_a_failing_handler_is_logged_set_aside_and_the_consumer_goes_on(log_lines):
    transport = MemoryTransport()
    good = Recorder()

    async def broken(payload):
        if payload["n"] == 1:
            raise RuntimeError("model exploded")
        await good(payload)

    other = Recorder()
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", broken, name="broken", max_attempts=1)
    bus.subscribe("t.x", other, name="other")
    async with bus:
        failing_id = await bus.publish("t.x", {"n": 1}, trace_id="trace-of-the-failure")
        await bus.publish("t.x", {"n": 2})
        await eventually(lambda: len(good.payloads) == 1 and len(other.payloads) == 2)
    assert good.payloads == [{"n": 2}]
    failure = log_lines.named("event_handler_failed")[0]
    assert failure["event_id"] == failing_id
    assert failure["trace_id"] == "trace-of-the-failure"
    assert failure["level"] == "error"
    assert "model exploded" in json.dumps(failure)
    (record,) = transport.dead_letters("t.x")
    assert record["event_id"] == failing_id
    assert record["error_type"] == "RuntimeError"
    assert record["error"] == "model exploded"
    assert record["handler"] == "broken"


async def test_an_undecodable_entry_is_set_aside_and_the_consumer_goes_on():
    transport = MemoryTransport()
    received = Recorder()
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", received)
    async with bus:
        await transport.publish("t.x", [b"\xff not json", b'{"v": 99}', b"[1, 2]"])
        await bus.publish("t.x", {"fine": True})
        await eventually(lambda: received.payloads)
        await eventually(lambda: len(transport.dead_letters("t.x")) == 3)
    assert received.payloads == [{"fine": True}]
    reasons = [r["error"] for r in transport.dead_letters("t.x")]
    assert "not JSON" in reasons[0]
    assert "unsupported envelope version 99" in reasons[1]
    assert "expected a JSON object" in reasons[2]


async def test_an_envelope_whose_headers_are_not_an_object_is_set_aside():
    transport = MemoryTransport()
    received = Recorder()
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", received)
    envelope = {
        "v": 1,
        "id": "e1",
        "type": "t.x",
        "trace_id": "t1",
        "time": "2026-01-01T00:00:00.000000Z",
        "source": "s",
        "payload": {},
    }
    async with bus:
        await transport.publish(
            "t.x", [json.dumps({**envelope, "headers": h}).encode() for h in (False, 0, "", [])]
        )
        await eventually(lambda: len(transport.dead_letters("t.x")) == 4)
    assert received.payloads == []
    assert {r["error"] for r in transport.dead_letters("t.x")} == {
        "payload and headers must be JSON objects"
    }


async def test_handlers_log_lines_carry_the_event_trace_without_being_told(log_lines):
    log = get_logger("test.handler")

    async def handler(payload):
        log.info("handled_in_handler", n=payload["n"])

    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", handler)
    async with bus:
        await bus.publish("t.x", {"n": 1}, trace_id="trace-a")
        await bus.publish("t.x", {"n": 2}, trace_id="trace-b")
        await eventually(lambda: len(log_lines.named("handled_in_handler")) == 2)
    handled = {line["n"]: line["trace_id"] for line in log_lines.named("handled_in_handler")}
    assert handled == {1: "trace-a", 2: "trace-b"}


async def test_concurrency_limit_is_respected():
    running = peak = done = 0

    async def handler(payload):
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        done += 1

    bus = EventBus("memory://", service_name="svc", concurrency=4)
    bus.subscribe("t.x", handler)
    async with bus:
        await bus.publish_many("t.x", [{"n": n} for n in range(40)])
        await eventually(lambda: done == 40, "the 40 events handled")
    assert peak == 4


async def test_guide_unit_test_shape_runs_on_memory():
    event_bus = EventBus("memory://", service_name="test")
    await event_bus.initialize()
    received_events = []

    async def capture_event(data):
        received_events.append(data)

    event_bus.subscribe("ai.signal.generated", capture_event)
    await event_bus.start()
    trace_id = trace_context.generate()
    await event_bus.publish(
        "ai.signal.generated", {"symbol": "BTCUSDT", "confidence": 0.85}, trace_id=trace_id
    )
    await asyncio.sleep(0.5)
    assert len(received_events) == 1
    assert received_events[0]["symbol"] == "BTCUSDT"
    await event_bus.stop()


# -- bad input fails at once, with a message that says what was expected -------------------


async def sync_handler_is_not_allowed():  # an async function, used below as a valid handler
    return None


def plain_function(payload):
    return None


@pytest.mark.parametrize(
    "handler",
    [plain_function, lambda payload: None, functools.partial(plain_function), "not callable", None],
)
def test_subscribe_rejects_handlers_that_are_not_async(handler):
    bus = EventBus("memory://", service_name="svc")
    with pytest.raises(TypeError, match=r"must be an async function"):
        bus.subscribe("t.x", handler)


def test_subscribe_accepts_async_functions_methods_partials_and_async_callables():
    class Handlers:
        async def method(self, payload):
            return None

        async def __call__(self, payload):
            return None

    async def with_extra(payload, extra):
        return None

    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", sync_handler_is_not_allowed)
    bus.subscribe("t.x", Handlers().method)
    bus.subscribe("t.x", Handlers())
    bus.subscribe("t.x", functools.partial(with_extra, extra=1))
    assert len({r.name for r in bus._routes}) == 4


def test_subscribing_the_same_handler_twice_needs_a_name():
    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", sync_handler_is_not_allowed)
    with pytest.raises(ValueError, match=r"already subscribed.*name="):
        bus.subscribe("t.x", sync_handler_is_not_allowed)
    bus.subscribe("t.x", sync_handler_is_not_allowed, name="second")


@pytest.mark.parametrize(
    "event_type",
    [
        "",
        ".",
        "a..b",
        "trailing.",
        ".leading",
        "with space",
        "wild.*",
        "wild.>",
        42,
        None,
        "x" * 201,
    ],
)
async def test_malformed_event_types_are_rejected_everywhere(event_type):
    bus = EventBus("memory://", service_name="svc")
    with pytest.raises(ValueError, match=r"invalid event type.*dot-separated"):
        bus.subscribe(event_type, sync_handler_is_not_allowed)
    with pytest.raises(ValueError, match=r"invalid event type"):
        await bus.publish(event_type, {})


@pytest.mark.parametrize("payload", [None, "text", 42, [1, 2], ("a",), b"bytes"])
async def test_payload_must_be_a_dict_or_a_model(payload):
    bus = EventBus("memory://", service_name="svc")
    with pytest.raises(TypeError, match=r"must be a dict or a pydantic model"):
        await bus.publish("t.x", payload)


@pytest.mark.parametrize("value", [object(), b"\xff\xfe", {"nested": object()}])
async def test_payload_that_is_not_json_serialisable_is_rejected(value):
    bus = EventBus("memory://", service_name="svc")
    with pytest.raises(TypeError, match=r"not JSON-serialisable"):
        await bus.publish("t.x", {"value": value})


async def test_concurrency_zero_is_refused_not_taken_for_the_default():
    bus = EventBus("memory://", service_name="svc")

    async def handle(payload):
        return None

    with pytest.raises(ValueError, match=r"concurrency must be a whole number >= 1, got 0"):
        bus.subscribe("t.x", handle, concurrency=0)


class Quote(BaseModel):
    bid: float


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"price": math.nan}, "price"),
        ({"book": {"levels": [1.0, math.inf]}}, r"book\.levels\[1\]"),
        ({"x": [{"y": -math.inf}]}, r"x\[0\]\.y"),
        (Quote(bid=math.nan), "bid"),
    ],
)
async def test_nan_and_infinity_are_refused_at_publish_naming_the_field(payload, path):
    transport = MemoryTransport()
    bus = EventBus(transport, service_name="svc")
    with pytest.raises(ValueError, match=rf"payload of 't\.x' holds .* at {path}: JSON"):
        await bus.publish("t.x", payload)
    with pytest.raises(ValueError, match=path):
        await bus.publish_many("t.x", [{"fine": 1.5}, payload])
    assert not transport._history.get("t.x")  # all or none: nothing was stored


async def test_the_text_nan_in_a_payload_is_just_text():
    bus = EventBus("memory://", service_name="svc")
    await bus.publish("t.x", {"NaN": "NaN", "Infinity": ["-Infinity"], "n": 1.5})


async def test_nothing_is_published_when_one_payload_of_a_batch_is_bad():
    transport = MemoryTransport()
    received = Recorder()
    consumer = EventBus(transport, service_name="c")
    consumer.subscribe("t.x", received)
    async with consumer:
        with pytest.raises(TypeError):
            await EventBus(transport, service_name="p").publish_many("t.x", [{"a": 1}, "bad"])
        await asyncio.sleep(0.02)
    assert received.payloads == []


@pytest.mark.parametrize("trace_id", ["", "has space", 7])
async def test_publish_rejects_an_unusable_trace_id(trace_id):
    bus = EventBus("memory://", service_name="svc")
    with pytest.raises(ValueError, match=r"invalid trace id"):
        await bus.publish("t.x", {}, trace_id=trace_id)


@pytest.mark.parametrize("service_name", ["", "has space", None, 5, "x" * 101])
def test_service_name_is_checked(service_name):
    with pytest.raises(ValueError, match=r"service_name must be"):
        EventBus("memory://", service_name=service_name)


@pytest.mark.parametrize("option", ["read_count", "concurrency"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_numeric_options_are_checked(option, value):
    with pytest.raises(ValueError, match=rf"{option} must be a whole number"):
        EventBus("memory://", service_name="svc", **{option: value})


@pytest.mark.parametrize("value", [-1, True, math.inf, math.nan, "5"])
def test_stop_timeout_is_checked(value):
    with pytest.raises(ValueError, match=r"stop_timeout must be a number of seconds >= 0"):
        EventBus("memory://", service_name="svc", stop_timeout=value)


def test_unknown_transport_url_names_the_known_schemes():
    with pytest.raises(
        ValueError, match=r"no transport for URL scheme pulsar://.*kafka://.*memory://"
    ):
        EventBus("pulsar://broker:6650", service_name="svc")


def test_transport_of_the_wrong_type_is_rejected():
    with pytest.raises(
        TypeError, match=r"must be a Transport, a redis.asyncio.Redis client, or a URL"
    ):
        EventBus(object(), service_name="svc")


async def test_subscribe_after_start_and_publish_after_stop_fail_clearly():
    bus = EventBus("memory://", service_name="svc")
    await bus.start()
    with pytest.raises(RuntimeError, match=r"after start"):
        bus.subscribe("t.x", sync_handler_is_not_allowed)
    await bus.stop()
    await bus.stop()  # twice is harmless
    with pytest.raises(RuntimeError, match=r"stopped"):
        await bus.publish("t.x", {})


async def test_memory_transport_fetch_is_cancel_safe_and_close_returns_pending():
    transport = MemoryTransport()
    sub_a = await transport.subscribe("t", group="g", consumer="a")
    sub_b = await transport.subscribe("t", group="g", consumer="b")
    fetch = asyncio.create_task(sub_a.fetch(10, 5))
    await asyncio.sleep(0.01)
    fetch.cancel()
    await transport.publish("t", [b"1", b"2"])
    got = await sub_b.fetch(10, 1)
    assert [d.data for d in got] == [b"1", b"2"]
    await sub_b.ack(got[:1])
    await sub_b.close()
    again = await sub_a.fetch(10, 1)
    assert again == [Delivery(b"2", got[1].receipt, 2)]


async def test_backlog_reports_pending_and_lag_per_subscription():
    transport = MemoryTransport()
    release = asyncio.Event()

    async def slow(payload):
        await release.wait()

    bus = EventBus(transport, service_name="svc", concurrency=2)
    bus.subscribe("t.x", slow, name="slow")
    async with bus:
        await bus.ping()
        await bus.publish_many("t.x", [{"n": n} for n in range(5)])
        await eventually(lambda: bus._consumers[0].in_flight == 2)
        backlog = await bus.backlog()
        assert backlog["t.x -> slow"].pending == 2
        assert backlog["t.x -> slow"].lag == 3
        release.set()
        await eventually(lambda: transport._topics["t.x"]["svc:slow"].pending == {})
