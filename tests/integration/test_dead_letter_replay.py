"""Replaying a dead letter on every transport: once, whoever else replays it, and never lost.

Replay claims the dead letter before it publishes (it deletes it: of two replays of one
letter, one deletes it and the other finds it gone); when the publish then fails, the
record is stored again.
"""

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from quantum_core import EventBus, Transport, TransportError
from quantum_core.testing import eventually


@pytest.fixture
async def make_transport(transport_factory):
    """A new transport per call, on each transport in turn; all closed afterwards."""
    made = []

    def make():
        made.append(transport_factory())
        return made[-1]

    yield make
    for transport in made:
        await transport.close()


async def _one_dead_letter(bus, topic):
    await bus.publish(topic, {"poison": True})

    async def dead():
        return len(await bus.dead_letters(topic)) == 1

    await eventually(dead, "the event dead-lettered", timeout=20)
    (letter,) = await bus.dead_letters(topic)
    return letter


async def test_two_replays_of_one_dead_letter_publish_it_once(make_transport):
    topic = f"orders.{uuid.uuid4().hex[:8]}"
    failing, poison_runs, sentinels = True, [], []

    async def handle(payload):
        if payload.get("sentinel"):
            sentinels.append(payload)
            return
        poison_runs.append(payload)
        if failing:
            raise ValueError("venue rejected")

    bus = EventBus(make_transport(), service_name="exec", max_attempts=1, concurrency=1)
    bus.subscribe(topic, handle, name="h")
    operator = EventBus(make_transport(), service_name="ops")
    async with bus, operator:
        letter = await _one_dead_letter(bus, topic)
        failing = False
        for replayer in (bus, operator):  # connected, so the two replays really race
            await replayer.dead_letters(topic)
            await replayer.publish(f"{topic}.warm", {})
        results = await asyncio.gather(
            bus.replay_dead_letter(topic, letter.id),
            operator.replay_dead_letter(topic, letter.id),
            return_exceptions=True,
        )
        assert sorted(type(result).__name__ for result in results) == ["LookupError", "str"]
        assert letter.event_id in results
        # One consumer, one at a time: a second replay, published before this, comes first.
        await bus.publish(topic, {"sentinel": True})

        async def sentinel_handled():
            return bool(sentinels)

        await eventually(
            sentinel_handled, "the event published after the replays handled", timeout=20
        )
        assert await bus.dead_letters(topic) == []
    assert len(poison_runs) == 2  # the first attempt, then one replay


class _PublishFails(Transport):
    """A real transport whose publishes the broker refuses (dead letters work as usual)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        raise TransportError("the broker refused the publish")

    async def subscribe(self, topic, *, group, consumer, from_beginning=False):
        return await self.inner.subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )

    async def read_dead_letters(self, topic, limit, *, start=None):
        return await self.inner.read_dead_letters(topic, limit, start=start)

    async def delete_dead_letters(self, topic, ids):
        return await self.inner.delete_dead_letters(topic, ids)

    async def restore_dead_letter(self, topic, record):
        await self.inner.restore_dead_letter(topic, record)


async def test_a_replay_whose_publish_fails_keeps_the_dead_letter(make_transport):
    topic = f"orders.{uuid.uuid4().hex[:8]}"

    async def fails(payload):
        raise ValueError("venue rejected")

    bus = EventBus(make_transport(), service_name="exec", max_attempts=1)
    bus.subscribe(topic, fails, name="h")
    async with bus:
        letter = await _one_dead_letter(bus, topic)
        refusing = EventBus(_PublishFails(make_transport()), service_name="ops")
        with pytest.raises(TransportError, match="refused"):
            await refusing.replay_dead_letter(topic, letter.id)
        (kept,) = await bus.dead_letters(topic)
        assert kept.original == letter.original  # stored again, whole (under a new id)
        assert (kept.event_id, kept.error, kept.service) == (
            letter.event_id,
            letter.error,
            letter.service,
        )
        await refusing.stop()
