"""A publisher's ordering_key reaches a transport that places messages by key, only there."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from quantum_core import EventBus, MemoryTransport
from quantum_core.bus.abilities import KeyedPublisher


class KeyedMemory(MemoryTransport):
    """The memory transport, noting the keys it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[Sequence[str | None] | None] = []

    async def publish_keyed(
        self, topic: str, messages: Sequence[bytes], keys: Sequence[str | None] | None
    ) -> None:
        self.keys.append(keys)
        await self.publish(topic, messages)


class Tick(BaseModel):
    symbol: str
    price: float


async def test_keys_reach_a_keyed_transport_one_per_event():
    transport = KeyedMemory()
    assert isinstance(transport, KeyedPublisher)
    bus = EventBus(transport, service_name="md")
    await bus.publish_many(
        "md.tick", [{"symbol": "BTC"}, {"symbol": 7}, {"other": 1}], ordering_key="symbol"
    )
    await bus.publish("md.tick", Tick(symbol="ETH", price=1.0), ordering_key="symbol")
    await bus.publish("md.tick", {"a": 1, "b": 2}, ordering_key=lambda p: p["a"] + p["b"])
    assert transport.keys == [["BTC", "7", None], ["ETH"], ["3"]]


async def test_without_a_key_the_plain_publish_is_used():
    transport = KeyedMemory()
    bus = EventBus(transport, service_name="md")
    await bus.publish_many("md.tick", [{"symbol": "BTC"}])
    assert transport.keys == []


async def test_a_transport_without_keys_ignores_them():
    bus = EventBus(MemoryTransport(), service_name="md")
    assert len(await bus.publish_many("md.tick", [{"s": 1}], ordering_key="s")) == 1


async def test_a_bad_ordering_key_says_what_is_expected():
    bus = EventBus(KeyedMemory(), service_name="md")
    with pytest.raises(TypeError, match="ordering_key must be a payload field name"):
        await bus.publish("md.tick", {"s": 1}, ordering_key=3)  # type: ignore[arg-type]
