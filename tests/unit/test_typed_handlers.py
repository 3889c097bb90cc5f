"""Typed handlers (issue 22): a handler annotated with a model gets a validated instance.

This module uses ``from __future__ import annotations`` on purpose: the annotations are
strings here, resolved by the bus with ``typing.get_type_hints``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
from pydantic import BaseModel, field_validator
from typing_extensions import TypedDict  # pydantic's choice on Python < 3.12

from quantum_core import EventBus, MemoryTransport
from quantum_core.bus.envelope import MODEL_HEADER, decode
from quantum_core.testing import capture_logs, running


class AISignal(BaseModel):
    symbol: str
    action: str
    confidence: float


class Fill(TypedDict):
    order_id: str
    quantity: float


@dataclasses.dataclass
class Tick:
    symbol: str
    price: float


class Picky(BaseModel):
    symbol: str

    @field_validator("symbol")
    @classmethod
    def known(cls, value: str) -> str:
        return {"BTCUSDT": value}[value]  # a KeyError, not a ValueError: not pydantic's


class Unvalidatable:  # not a model, no schema: pydantic cannot validate it
    pass


VALIDATIONS: list[str] = []


class Counted(BaseModel):
    symbol: str

    @field_validator("symbol")
    @classmethod
    def count(cls, value: str) -> str:
        VALIDATIONS.append(value)
        return value


SIGNAL = {"symbol": "BTCUSDT", "action": "BUY", "confidence": 0.9}


async def test_model_typeddict_dataclass_and_dict_handlers_each_get_what_they_ask_for() -> None:
    got: dict[str, Any] = {}
    bus = EventBus("memory://", service_name="svc")

    @bus.subscriber("ai.signal.generated")
    async def on_model(signal: AISignal) -> None:
        got["model"] = signal

    @bus.subscriber("ai.signal.generated")
    async def on_dict(payload: dict) -> None:
        got["dict"] = payload

    @bus.subscriber("ai.signal.generated")
    async def on_unannotated(payload) -> None:  # type: ignore[no-untyped-def]
        got["plain"] = payload

    @bus.subscriber("execution.order.filled")
    async def on_fill(fill: Fill) -> None:
        got["typeddict"] = fill

    @bus.subscriber("market.data.update")
    async def on_tick(tick: Tick) -> None:
        got["dataclass"] = tick

    async with running(bus) as test:
        await bus.publish("ai.signal.generated", AISignal(**SIGNAL))
        await bus.publish("execution.order.filled", {"order_id": "o-1", "quantity": "2.5"})
        await bus.publish("market.data.update", {"symbol": "ETHUSDT", "price": 3000})
        await test.settled()
    assert got["model"] == AISignal(**SIGNAL)
    assert got["dict"] == got["plain"] == SIGNAL
    assert got["typeddict"] == {"order_id": "o-1", "quantity": 2.5}  # validated: str -> float
    assert got["dataclass"] == Tick("ETHUSDT", 3000.0)


async def test_bound_methods_and_partials_are_typed_by_their_first_parameter() -> None:
    class Desk:
        def __init__(self) -> None:
            self.seen: list[object] = []

        async def on_signal(self, signal: AISignal) -> None:
            self.seen.append(signal)

    async def tagged(signal: AISignal, tag: str) -> None:
        desk.seen.append((tag, signal.symbol))

    desk = Desk()
    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("ai.signal.generated", desk.on_signal)
    bus.subscribe("ai.signal.generated", functools.partial(tagged, tag="p"), name="partial")
    async with running(bus) as test:
        await bus.publish("ai.signal.generated", SIGNAL)
        await test.settled()
    assert AISignal(**SIGNAL) in desk.seen
    assert ("p", "BTCUSDT") in desk.seen


async def test_an_invalid_payload_is_dead_lettered_at_once_with_every_reason() -> None:
    calls = []
    bus = EventBus("memory://", service_name="svc", max_attempts=5, retry_backoff=0.001)

    @bus.subscriber("ai.signal.generated")
    async def on_signal(signal: AISignal) -> None:
        calls.append(signal)

    with capture_logs() as lines:
        async with running(bus) as test:
            event_id = await bus.publish(
                "ai.signal.generated", {"symbol": "BTCUSDT", "confidence": "very"}
            )
            await bus.publish("ai.signal.generated", SIGNAL)  # the next one goes on
            await test.settled()
            [letter] = await bus.dead_letters("ai.signal.generated")
            stats = await bus.stats()
    assert calls == [AISignal(**SIGNAL)]  # the handler never saw the bad one
    assert letter.event_id == event_id
    assert letter.attempts == 1  # no retries: retrying cannot fix a payload
    assert letter.error_type == "ValueError"
    assert "not a valid AISignal" in letter.error
    assert "action: Field required" in letter.error
    assert "confidence: Input should be a valid number" in letter.error
    [counters] = stats.values()
    assert (counters.retried, counters.dead_lettered, counters.handled) == (0, 1, 1)
    errors = [line for line in lines if line["level"] == "error"]
    assert [(e["event"], e["event_id"]) for e in errors] == [("event_payload_invalid", event_id)]


async def test_a_validator_that_raises_anything_fails_the_payload_not_the_consumer() -> None:
    seen = []
    bus = EventBus("memory://", service_name="svc")

    @bus.subscriber("ai.signal.generated")
    async def on_signal(signal: Picky) -> None:
        seen.append(signal.symbol)

    async with running(bus) as test:
        await bus.publish("ai.signal.generated", {"symbol": "DOGEUSDT"})
        await bus.publish("ai.signal.generated", {"symbol": "BTCUSDT"})
        await test.settled()
        [letter] = await bus.dead_letters("ai.signal.generated")
    assert seen == ["BTCUSDT"]
    assert letter.attempts == 1
    assert "its validation raised KeyError: 'DOGEUSDT'" in letter.error


async def test_validation_runs_once_per_event_even_when_the_handler_is_retried() -> None:
    VALIDATIONS.clear()
    attempts = []
    bus = EventBus("memory://", service_name="svc", retry_backoff=0.001)

    async def flaky(signal: Counted) -> None:
        attempts.append(signal.symbol)
        if len(attempts) < 3:
            raise RuntimeError("try again")

    bus.subscribe("ai.signal.generated", flaky)
    async with running(bus) as test:
        await bus.publish("ai.signal.generated", {"symbol": "BTCUSDT"})
        await test.settled()
    assert attempts == ["BTCUSDT"] * 3
    assert VALIDATIONS == ["BTCUSDT"]


async def test_publishing_a_model_names_it_in_a_header() -> None:
    transport = MemoryTransport()
    bus = EventBus(transport, service_name="svc")
    seen: list[bytes] = []
    subscription = await transport.subscribe("ai.signal.generated", group="g", consumer="c")
    async with bus:
        await bus.publish("ai.signal.generated", AISignal(**SIGNAL), headers={"a": "b"})
        await bus.publish("ai.signal.generated", SIGNAL)
        seen = [d.data for d in await subscription.fetch(10, 1.0)]
    model, plain = (decode(data) for data in seen)
    assert model.payload == SIGNAL  # the JSON form, as before
    assert model.headers == {"a": "b", MODEL_HEADER: "AISignal"}
    assert plain.headers == {}
    await transport.close()


def test_the_decorator_returns_the_function_unchanged_and_subscribes_it() -> None:
    bus = EventBus("memory://", service_name="svc")

    async def on_signal(signal: AISignal) -> None: ...

    assert (
        bus.subscriber("ai.signal.generated", concurrency=2, ordering_key="symbol")(on_signal)
        is on_signal
    )
    [route] = bus.routes
    assert (route.event_type, route.concurrency, route.handler) == (
        "ai.signal.generated",
        2,
        on_signal,
    )
    assert route.ordering_key is not None
    assert route.ordering_key({"symbol": "X"}) == "X"  # keys read the payload dict


def test_a_dict_handler_builds_no_validator() -> None:
    bus = EventBus("memory://", service_name="svc")

    async def on_any(payload: dict[str, Any]) -> None: ...

    async def on_object(payload: object) -> None: ...

    bus.subscribe("a.b", on_any)
    bus.subscribe("a.b", on_object)
    assert [route.payload for route in bus.routes] == [None, None]


def test_an_annotation_pydantic_cannot_validate_fails_at_subscribe_naming_both() -> None:
    bus = EventBus("memory://", service_name="svc")

    async def on_thing(thing: Unvalidatable) -> None: ...

    with pytest.raises(TypeError, match=r"on_thing.*annotated Unvalidatable.*cannot validate"):
        bus.subscribe("a.b", on_thing)
    assert bus.routes == ()


def test_an_annotation_that_cannot_be_resolved_fails_at_subscribe() -> None:
    """Also a class defined inside a function, under ``from __future__ import annotations``."""
    bus = EventBus("memory://", service_name="svc")

    async def on_thing(thing: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match=r"on_thing.*'NotDefinedAnywhere'.*cannot be resolved"):
        bus.subscribe("a.b", on_thing)


def test_two_handlers_with_one_name_on_one_event_type_fail_at_subscribe() -> None:
    bus = EventBus("memory://", service_name="svc")

    async def on_signal(signal: AISignal) -> None: ...

    bus.subscriber("ai.signal.generated")(on_signal)
    with pytest.raises(ValueError, match="already subscribed"):
        bus.subscriber("ai.signal.generated")(on_signal)


def test_publisher_declares_and_refuses_what_pydantic_cannot_describe() -> None:
    bus = EventBus("memory://", service_name="svc")
    bus.publisher("risk.signal.approved", AISignal)
    bus.publisher("demo.note")
    assert list(bus.publishes) == ["risk.signal.approved", "demo.note"]
    with pytest.raises(TypeError, match="cannot describe"):
        bus.publisher("a.b", Unvalidatable)
    with pytest.raises(ValueError, match="invalid event type"):
        bus.publisher("not an event type", AISignal)
