"""The transport contract: the checks every transport must pass, and how to run them.

``check_transport(make_transport)`` proves that a transport honours the contract the EventBus
relies on (see trio's ``check_two_way_stream`` and Watermill's shared pub/sub tests). The
checks of fault tolerance (retries, time limits, dead letters) are in ``faults.py``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from pydantic import BaseModel

from ..bus import EventBus
from ..bus.envelope import MODEL_HEADER
from ..tracing import trace_context
from .faults import FAULT_CHECKS
from .harness import PATIENCE, Check, Harness, MakeTransport, TransportFeatures, expect
from .listing import LISTING_CHECKS
from .recorder import EventRecorder
from .waiting import eventually

__all__ = ["CHECKS", "check_payload_round_trip", "check_transport"]


def _one_key(payload: dict[str, Any]) -> str:
    """One ordering key for every event: one partition, one order, on any transport."""
    return "one"


def _key_of(features: TransportFeatures) -> str | None:
    """``"symbol"`` where only keyed events keep their order (Kafka), else no publish key."""
    return None if features.orders_unkeyed else "symbol"


async def _fan_out(h: Harness, features: TransportFeatures) -> None:
    """Every service, and every handler within one, receives every event."""
    topic = h.topic("fan_out")
    first, second, other = EventRecorder(), EventRecorder(), EventRecorder()
    risk = h.bus("risk")
    risk.subscribe(topic, first, name="first")
    risk.subscribe(topic, second, name="second")
    audit = h.bus("audit")
    audit.subscribe(topic, other)
    await risk.start()
    await audit.start()
    ids = await h.bus("publisher").publish_many(topic, [{"n": n} for n in range(20)])
    for recorder in (first, second, other):
        await recorder.wait_for(20)
        expect(sorted(p["n"] for p in recorder.payloads) == list(range(20)), recorder.payloads)
        expect(sorted(e.id for e in recorder.events) == sorted(ids))


async def _competing_consumers(h: Harness, features: TransportFeatures) -> None:
    """Replicas of one service share the events: each handled once, by some replica."""
    topic = h.topic("competing")
    handled: list[tuple[int, int]] = []
    done = asyncio.Event()

    def replica(number: int) -> EventBus:
        async def handle(payload: dict[str, Any]) -> None:
            handled.append((number, payload["n"]))
            await asyncio.sleep(0.002)
            if len(handled) >= 200:
                done.set()

        bus = h.bus("execution", read_count=5, concurrency=4)
        bus.subscribe(topic, handle, name="handle")
        return bus

    replicas = [replica(n) for n in range(3)]
    for bus in replicas:
        await bus.start()
    await h.bus("publisher").publish_many(topic, [{"n": n} for n in range(200)])
    await asyncio.wait_for(done.wait(), 10)
    await asyncio.sleep(0.1)  # a duplicate would arrive now
    numbers = sorted(n for _, n in handled)
    expect(numbers == list(range(200)), f"{len(numbers)} handled for 200 published")
    expect(len({worker for worker, _ in handled}) > 1, "one replica did all the work")


async def _ack_after_handler(h: Harness, features: TransportFeatures) -> None:
    """An event whose handler never finished is delivered again, to another replica."""
    topic = h.topic("ack_after")
    started = asyncio.Event()

    async def hang(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    doomed = h.bus("execution", stop_timeout=0)
    doomed.subscribe(topic, hang, name="handle")
    await doomed.start()
    await h.bus("publisher").publish(topic, {"order": 1})
    await asyncio.wait_for(started.wait(), 5)
    await doomed.stop()  # like a crash: the handler is cancelled, nothing acknowledged

    survivor_handled = EventRecorder()
    survivor = h.bus("execution")
    survivor.subscribe(topic, survivor_handled, name="handle")
    await survivor.start()
    await survivor_handled.wait_for(1, features.redelivery_timeout + 5)
    expect(survivor_handled.payloads == [{"order": 1}])
    expect(survivor_handled.events[0].attempt >= 2)


async def _stop_finishes_in_flight(h: Harness, features: TransportFeatures) -> None:
    """stop() lets handlers in flight finish and acknowledges them: nothing comes back."""
    topic = h.topic("stop")
    started: list[int] = []
    finished: list[int] = []

    async def slow(payload: dict[str, Any]) -> None:
        started.append(payload["n"])
        await asyncio.sleep(0.1)
        finished.append(payload["n"])

    bus = h.bus("svc", stop_timeout=5)
    bus.subscribe(topic, slow, name="handle")
    await bus.start()
    await h.bus("publisher").publish_many(topic, [{"n": n} for n in range(5)])
    for _ in range(500):  # every handler running: in flight, not merely fetched
        if len(started) == 5:
            break
        await asyncio.sleep(0.01)
    expect(len(started) == 5, f"only {len(started)} of 5 handlers started within 5 s")
    await bus.stop()
    expect(sorted(finished) == list(range(5)))

    again = EventRecorder()
    replacement = h.bus("svc")
    replacement.subscribe(topic, again, name="handle")
    await replacement.start()
    await asyncio.sleep(features.redelivery_timeout)
    expect(again.payloads == [], "a handled event was delivered again")
    if features.reports_backlog:
        expect((await replacement.backlog())[f"{topic} -> handle"].pending == 0)


async def _ordering_key(h: Harness, features: TransportFeatures) -> None:
    """Events with one key are handled one at a time in publish order; keys run in parallel."""
    topic = h.topic("ordering")
    seen: dict[str, list[int]] = defaultdict(list)
    active: set[str] = set()
    overlap = 0
    peak = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal overlap, peak
        key = payload["symbol"]
        if key in active:
            overlap += 1
        active.add(key)
        peak = max(peak, len(active))
        await asyncio.sleep(0.001 * (payload["n"] % 3))
        seen[key].append(payload["n"])
        active.discard(key)

    bus = h.bus("ordered", concurrency=8, read_count=50)
    bus.subscribe(topic, handle, ordering_key="symbol")
    await bus.start()
    symbols = ["BTC", "ETH", "SOL", "XRP"]
    payloads = [{"symbol": symbols[n % 4], "n": n} for n in range(200)]
    await h.bus("publisher").publish_many(topic, payloads, ordering_key=_key_of(features))
    for _ in range(1000):
        if sum(map(len, seen.values())) == 200:
            break
        await asyncio.sleep(0.01)
    expect(overlap == 0, "two events of one key ran at the same time")
    for symbol in symbols:
        expect(seen[symbol] == [p["n"] for p in payloads if p["symbol"] == symbol], symbol)
    expect(peak > 1, "keys were not handled concurrently")


async def _trace_in_handler(h: Harness, features: TransportFeatures) -> None:
    """While a handler runs, trace_context and current_event() describe its event."""
    topic = h.topic("trace")
    recorder = EventRecorder()
    bus = h.bus("traced")
    bus.subscribe(topic, recorder)
    await bus.start()
    publisher = h.bus("publisher")
    with trace_context.scope("4bf92f3577b34da6a3ce929d0e0e4736"):
        first = await publisher.publish(topic, {"n": 1})
    second = await publisher.publish(topic, {"n": 2}, trace_id="explicit-trace")
    await recorder.wait_for(2)
    by_id = {e.id: (e, t) for e, t in zip(recorder.events, recorder.traces, strict=True)}
    expect(by_id[first][1] == by_id[first][0].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736")
    expect(by_id[second][1] == "explicit-trace")
    expect(by_id[second][0].source == publisher.service_name)
    expect(by_id[second][0].type == topic)


async def _from_beginning(h: Harness, features: TransportFeatures) -> None:
    """A new group starts after the newest event, unless it asks to start from the oldest."""
    topic = h.topic("start")
    publisher = h.bus("publisher")
    one_key_fn = None if features.orders_unkeyed else _one_key
    await publisher.publish(topic, {"n": "early"}, ordering_key=one_key_fn)
    latest, earliest = EventRecorder(), EventRecorder()
    bus = h.bus("late")
    bus.subscribe(topic, latest, name="latest")
    bus.subscribe(topic, earliest, name="earliest", from_beginning=True)
    await bus.start()
    await publisher.publish(topic, {"n": "after"}, ordering_key=one_key_fn)
    await earliest.wait_for(2)
    await latest.wait_for(1)
    await asyncio.sleep(0.1)
    expect([p["n"] for p in earliest.payloads] == ["early", "after"])
    expect([p["n"] for p in latest.payloads] == ["after"])


async def _malformed_set_aside(h: Harness, features: TransportFeatures) -> None:
    """An entry that is not an envelope is set aside, never fatal, never left pending."""
    topic = h.topic("malformed")
    recorder = EventRecorder()
    bus = h.bus("robust")
    bus.subscribe(topic, recorder, name="handle")
    await bus.start()
    transport = h.make_transport()
    h.stack.push_async_callback(transport.close)
    await transport.publish(topic, [b"\xff garbage", b'{"v": 99}', b"[]", b"{}"])
    await h.bus("publisher").publish(topic, {"fine": True})
    await recorder.wait_for(1)
    if features.reports_backlog:
        for _ in range(100):
            if (await bus.backlog())[f"{topic} -> handle"].pending == 0:
                break
            await asyncio.sleep(0.02)
        expect((await bus.backlog())[f"{topic} -> handle"].pending == 0)
    expect(recorder.payloads == [{"fine": True}])


class _TypedSignal(BaseModel):
    """The model of the typed-handler check (module level: its annotation must resolve)."""

    symbol: str
    confidence: float


async def _typed_handler(h: Harness, features: TransportFeatures) -> None:
    """A handler annotated with a model gets one; a payload that is not one goes aside at once.

    The published model travels as JSON with its name in the ``x-quantum-model`` header; the
    invalid payload is dead-lettered on its first attempt, while a dict handler of the same
    service handles both.
    """
    topic = h.topic("typed")
    typed: list[_TypedSignal] = []
    bus = h.bus("typed", max_attempts=3, retry_backoff=0.01)

    async def on_signal(signal: _TypedSignal) -> None:
        typed.append(signal)

    plain = EventRecorder()
    bus.subscribe(topic, on_signal, name="typed")
    bus.subscribe(topic, plain, name="plain")
    await bus.start()
    publisher = h.bus("publisher")
    key = _key_of(features)
    bad_id = await publisher.publish(topic, {"symbol": "ETHUSDT"}, ordering_key=key)
    await publisher.publish(topic, _TypedSignal(symbol="BTCUSDT", confidence=0.9), ordering_key=key)
    await plain.wait_for(2)
    pairs = zip(plain.payloads, plain.events, strict=True)
    seen = {p["symbol"]: (p, e.headers.get(MODEL_HEADER)) for p, e in pairs}
    expect(seen["ETHUSDT"] == ({"symbol": "ETHUSDT"}, None), seen)
    expect(seen["BTCUSDT"] == ({"symbol": "BTCUSDT", "confidence": 0.9}, "_TypedSignal"), seen)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not (letters := await bus.dead_letters(topic)) or not typed:
        expect(loop.time() < deadline, "the typed handler or the dead letter never came")
        await asyncio.sleep(0.02)
    expect(typed == [_TypedSignal(symbol="BTCUSDT", confidence=0.9)], typed)
    [letter] = letters
    expect(letter.event_id == bad_id and letter.attempts == 1, letter)
    expect("confidence: Field required" in letter.error, letter.error)


async def _guide_test_twice(h: Harness, features: TransportFeatures) -> None:
    """The guide's unit test, run twice against the same namespace: one event each time."""
    for _ in range(2):
        received: list[dict[str, Any]] = []

        async def capture_event(data: dict[str, Any]) -> None:
            received.append(data)  # noqa: B023 - each round's handler runs within its round

        event_bus = h.bus("test")
        await event_bus.initialize()
        event_bus.subscribe("ai.signal.generated", capture_event)
        await event_bus.start()
        trace_id = trace_context.generate()
        await event_bus.publish(
            "ai.signal.generated", {"symbol": "BTCUSDT", "confidence": 0.85}, trace_id=trace_id
        )
        # The guide sleeps 0.5 s here; a loaded machine (a cluster sharing two cores) may
        # need longer, so wait for the event, then as long again for an unwanted second one.
        waited = await eventually(lambda: bool(received), "the guide's event")  # noqa: B023
        await asyncio.sleep(min(waited, 0.5))
        expect(len(received) == 1, received)
        expect(received[0]["symbol"] == "BTCUSDT")
        await event_bus.stop()
        trace_context.clear()


async def check_payload_round_trip(
    make_transport: MakeTransport, payloads: Sequence[dict[str, Any]]
) -> None:
    """Publish ``payloads`` and check the handler receives each one unchanged, in order.

    They are published with one ordering key, so that a transport that orders only the
    events of one key (Kafka) keeps their order too; elsewhere the key changes nothing.
    """
    async with AsyncExitStack() as stack:
        h = Harness(make_transport, stack)
        topic = h.topic("round_trip")
        recorder = EventRecorder()
        bus = h.bus("round-trip", concurrency=1)
        bus.subscribe(topic, recorder)
        await bus.start()
        await h.bus("publisher").publish_many(topic, payloads, ordering_key=_one_key)
        await recorder.wait_for(len(payloads))
        expect(recorder.payloads == list(payloads))


CHECKS: dict[str, Check] = {
    "fan_out": _fan_out,
    "competing_consumers": _competing_consumers,
    "ack_after_handler": _ack_after_handler,
    "stop_finishes_in_flight": _stop_finishes_in_flight,
    "ordering_key": _ordering_key,
    "trace_in_handler": _trace_in_handler,
    "from_beginning": _from_beginning,
    "malformed_set_aside": _malformed_set_aside,
    "guide_test_twice": _guide_test_twice,
    "typed_handler": _typed_handler,
    **FAULT_CHECKS,  # retries, handler time limits, dead letters, replay, stats
    **LISTING_CHECKS,  # list_topics: what `quantum-core topics` shows
}
"""Every check of the transport contract, by name."""


async def check_transport(
    make_transport: MakeTransport,
    *,
    features: TransportFeatures | None = None,
    checks: Iterable[str] | None = None,
) -> None:
    """Run the transport contract (all of :data:`CHECKS`, or the named ones).

    Raises:
        AssertionError: naming the promise the transport broke.
    """
    chosen = list(CHECKS) if checks is None else list(checks)
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    for name in chosen:
        async with AsyncExitStack() as stack:
            await CHECKS[name](Harness(make_transport, stack), features or TransportFeatures())
