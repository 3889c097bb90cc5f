"""The transport interface: the surface every transport needs, and the optional abilities."""

import pytest

from quantum_core import Backlog, EventBus, MemoryTransport, Subscription, Transport
from quantum_core.bus.abilities import (
    BacklogReporter,
    DeadLetterRestore,
    DeadLetterStore,
    HandledRecords,
)
from quantum_core.testing import EventRecorder


class _BareSubscription(Subscription):
    def __init__(self, inner):
        self.inner = inner

    async def fetch(self, max_count, timeout):
        return await self.inner.fetch(max_count, timeout)

    async def ack(self, deliveries):
        await self.inner.ack(deliveries)

    async def dead_letter(self, delivery, record):
        await self.inner.dead_letter(delivery, record)

    async def close(self):
        await self.inner.close()


class _Bare(Transport):
    """The required surface only, on a memory broker underneath."""

    def __init__(self):
        self.inner = MemoryTransport()

    async def publish(self, topic, messages):
        await self.inner.publish(topic, messages)

    async def subscribe(self, topic, *, group, consumer, from_beginning=False):
        inner = await self.inner.subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )
        return _BareSubscription(inner)


def test_the_required_surface_is_abstract_and_nothing_optional_is_on_the_base():
    assert Transport.__abstractmethods__ == {"publish", "subscribe"}
    assert Subscription.__abstractmethods__ == {"fetch", "ack", "dead_letter", "close"}
    for name in ("read_dead_letters", "delete_dead_letters", "restore_dead_letter"):
        assert not hasattr(Transport, name), name
    for name in ("backlog", "mark_handled", "was_handled", "records_handled"):
        assert not hasattr(Subscription, name), name


async def test_a_transport_with_the_required_surface_only_runs_a_bus():
    recorder = EventRecorder()
    bus = EventBus(_Bare(), service_name="svc")
    bus.subscribe("t.x", recorder, name="h")
    async with bus:
        await bus.publish("t.x", {"n": 1})
        assert await recorder.wait_for(1) == [{"n": 1}]
        assert await bus.backlog() == {"t.x -> h": Backlog(pending=None, lag=None)}
        stats = (await bus.stats())["t.x -> h"]
        assert (stats.pending, stats.lag) == (None, None)


async def test_a_missing_ability_is_named_where_it_is_needed():
    bus = EventBus(_Bare(), service_name="svc")
    implement = "implement read_dead_letters and delete_dead_letters"
    with pytest.raises(
        NotImplementedError, match=f"_Bare does not give its dead letters back; {implement}"
    ):
        await bus.dead_letters("t.x")
    with pytest.raises(
        NotImplementedError, match=f"_Bare does not give its dead letters back; {implement}"
    ):
        await bus.replay_dead_letter("t.x", "1")
    with pytest.raises(
        NotImplementedError, match=f"_Bare does not delete its dead letters; {implement}"
    ):
        await bus.purge_dead_letters("t.x")

    async def handle(payload):
        pass

    bus.subscribe("t.x", handle, name="once", idempotent=True)
    with pytest.raises(
        NotImplementedError,
        match=r"_Bare keeps no handled-records \(its subscriptions would implement",
    ):
        await bus.start()
    await bus.stop()


async def test_abilities_are_found_by_their_methods():
    transport = MemoryTransport()
    subscription = await transport.subscribe("t.x", group="g", consumer="c")
    assert isinstance(transport, DeadLetterStore)
    assert isinstance(transport, DeadLetterRestore)
    assert isinstance(subscription, HandledRecords)
    assert isinstance(subscription, BacklogReporter)
    bare = _Bare()
    bare_subscription = await bare.subscribe("t.x", group="g", consumer="c")
    assert not isinstance(bare, DeadLetterStore | DeadLetterRestore)
    assert not isinstance(bare_subscription, HandledRecords | BacklogReporter)
    await subscription.close()
    await bare_subscription.close()
