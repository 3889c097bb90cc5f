"""Contract checks of fault tolerance: retries, time limits, dead letters, replay, stats.

The bus owns these semantics, but they lean on the transport (pending messages kept while a
retry waits, dead letters stored, read back and deleted), so they run on every transport
as part of :data:`quantum_core.testing.CHECKS`. Each check asserts on the order in which
things happened, never on how long they took: retry waits are seconds long where a
healthy path takes milliseconds, so a noisy machine does not flip them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..bus import current_event
from ..bus.abilities import backlog_of, dead_letter_store
from ..bus.dead_letters import REPLAY_FOR
from ..bus.envelope import decode
from ..bus.transport import Backlog, Delivery, Subscription, Transport
from ..errors import TransportError
from .harness import PATIENCE, Check, Harness, TransportFeatures, expect
from .waiting import eventually

__all__ = ["FAULT_CHECKS"]


async def _retry_then_succeed(h: Harness, features: TransportFeatures) -> None:
    """A handler that fails twice then succeeds is handled once, on attempt 3."""
    topic = h.topic("retry")
    attempts: list[int] = []

    async def flaky(payload: dict[str, Any]) -> None:
        info = current_event()
        attempt = info.attempt if info else 0
        attempts.append(attempt)
        if attempt < 3:
            raise RuntimeError(f"flaky on attempt {attempt}")

    bus = h.bus("retry", max_attempts=5, retry_backoff=0.01)
    bus.subscribe(topic, flaky, name="flaky")
    await bus.start()
    await h.bus("publisher").publish(topic, {"n": 1})

    async def handled() -> bool:
        return (await bus.stats())[f"{topic} -> flaky"].handled == 1

    await eventually(handled, "the flaky event handled", timeout=PATIENCE)
    stats = (await bus.stats())[f"{topic} -> flaky"]
    expect(attempts == [1, 2, 3], attempts)
    expect((stats.handled, stats.failed, stats.retried, stats.dead_lettered) == (1, 2, 2, 0), stats)
    expect(stats.retrying == 0, stats)
    if features.reports_backlog:

        async def acknowledged() -> bool:
            return (await bus.stats())[f"{topic} -> flaky"].pending == 0

        await eventually(acknowledged, "the handled event acknowledged", timeout=PATIENCE)
    expect(await bus.dead_letters(topic) == [], "a handled event was dead-lettered")


async def _dead_letter_replay_purge(h: Harness, features: TransportFeatures) -> None:
    """Out of attempts: dead-lettered with why; replayed to its group only; purged."""
    topic = h.topic("dead")
    fixed = False
    replayed: list[tuple[str, str, dict[str, str]]] = []
    others: list[int] = []

    async def fragile(payload: dict[str, Any]) -> None:
        if payload["n"] == 1 and not fixed:
            raise ValueError(f"cannot handle {payload['n']}")
        info = current_event()
        if info is not None and payload["n"] == 1:
            replayed.append((info.id, info.trace_id, dict(info.headers)))

    async def other(payload: dict[str, Any]) -> None:
        others.append(payload["n"])

    bus = h.bus("dl", max_attempts=3, retry_backoff=0.01)
    bus.subscribe(topic, fragile, name="fragile")
    bus.subscribe(topic, other, name="other")
    await bus.start()
    publisher = h.bus("publisher")
    bad_id = await publisher.publish(topic, {"n": 1}, trace_id="dead-letter-trace")
    await publisher.publish(topic, {"n": 2})

    async def one_dead_letter() -> bool:
        return len(await bus.dead_letters(topic)) == 1

    await eventually(one_dead_letter, "the failing event dead-lettered", timeout=PATIENCE)
    (letter,) = await bus.dead_letters(topic)
    expect((letter.event_id, letter.trace_id) == (bad_id, "dead-letter-trace"), letter)
    expect(
        (letter.service, letter.handler, letter.event_type) == (bus.service_name, "fragile", topic)
    )
    expect(
        (letter.attempts, letter.error_type, letter.error) == (3, "ValueError", "cannot handle 1")
    )
    expect("ValueError" in letter.traceback and letter.failed_at, letter)
    expect(decode(letter.original).payload == {"n": 1}, letter.original)
    stats = (await bus.stats())[f"{topic} -> fragile"]
    expect((stats.handled, stats.failed, stats.retried, stats.dead_lettered) == (1, 3, 2, 1), stats)

    fixed = True
    expect(await bus.replay_dead_letter(topic, letter.id) == bad_id)
    await publisher.publish(topic, {"n": 3})  # handled by "other" after the replay, if at all

    async def replay_handled() -> bool:
        return bool(replayed) and 3 in others

    await eventually(replay_handled, "the replayed event handled", timeout=PATIENCE)
    expect(replayed[0][:2] == (bad_id, "dead-letter-trace"), replayed)
    expect(replayed[0][2].get(REPLAY_FOR) == f"{bus.service_name}:fragile", replayed)
    expect(sorted(others) == [1, 2, 3], f"a replay reached a group that had handled it: {others}")
    expect(await bus.dead_letters(topic) == [], "a replayed dead letter was kept")
    try:
        await bus.replay_dead_letter(topic, letter.id)
    except LookupError:
        pass
    else:
        raise AssertionError("a dead letter was replayed twice")

    fixed = False
    await publisher.publish_many(topic, [{"n": 1}, {"n": 1}])

    async def two_dead_letters() -> bool:
        return len(await bus.dead_letters(topic)) == 2

    await eventually(two_dead_letters, "two more dead letters", timeout=PATIENCE)
    first, second = await bus.dead_letters(topic)
    expect([d.id for d in await bus.dead_letters(topic, limit=1)] == [first.id])
    expect([d.id for d in await bus.dead_letters(topic, after=first.id)] == [second.id])
    expect(await bus.purge_dead_letters(topic) == 2)
    expect(await bus.dead_letters(topic) == [], "purge left dead letters")


async def _retry_does_not_block_others(h: Harness, features: TransportFeatures) -> None:
    """Fifty always-failing events among 500 delay none of the other 450 (no ordering key)."""
    topic = h.topic("isolation")
    order: list[str] = []

    async def handle(payload: dict[str, Any]) -> None:
        if payload["bad"]:
            info = current_event()
            if info is not None and info.attempt >= 3:
                order.append("last attempt")
            raise RuntimeError("always fails")
        order.append("good")

    # The last attempt comes at least 1 + 2 s after the first: with retries that held a
    # slot or a place in the fetch buffer, 8 slots would be full of sleepers long before.
    bus = h.bus("isolated", concurrency=8, read_count=20)
    bus.subscribe(topic, handle, name="handle", max_attempts=3, retry_backoff=2.0)
    await bus.start()
    payloads = [{"n": n, "bad": n % 10 == 0} for n in range(500)]
    await h.bus("publisher").publish_many(topic, payloads)

    async def all_done() -> bool:
        return (await bus.stats())[f"{topic} -> handle"].dead_lettered == 50

    await eventually(all_done, "450 handled and 50 dead-lettered", timeout=60)
    last_good = max(i for i, what in enumerate(order) if what == "good")
    first_last_attempt = order.index("last attempt")
    expect(order.count("good") == 450, order.count("good"))
    expect(
        last_good < first_last_attempt,
        f"good event #{order[:first_last_attempt].count('good')} waited for failing ones",
    )
    stats = (await bus.stats())[f"{topic} -> handle"]
    expect((stats.handled, stats.failed, stats.retried) == (450, 150, 100), stats)


async def _handler_timeout(h: Harness, features: TransportFeatures) -> None:
    """A hung handler is cancelled after its timeout, retried, dead-lettered; others flow."""
    topic = h.topic("timeout")
    order: list[str] = []
    cancelled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal cancelled
        if payload["hang"]:
            info = current_event()
            order.append(f"hang {info.attempt if info else 0}")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled += 1
                raise
        order.append("good")

    bus = h.bus("hung", concurrency=2)
    bus.subscribe(topic, handle, name="handle", timeout=1.0, max_attempts=2, retry_backoff=0.01)
    await bus.start()
    await h.bus("publisher").publish_many(
        topic, [{"hang": True}, *({"hang": False, "n": n} for n in range(20))]
    )

    async def dead_lettered() -> bool:
        return len(await bus.dead_letters(topic)) == 1

    await eventually(dead_lettered, "the hung event dead-lettered", timeout=PATIENCE)
    (letter,) = await bus.dead_letters(topic)
    expect((letter.error_type, letter.attempts, cancelled) == ("HandlerTimeoutError", 2, 2))
    expect(order.count("good") == 20, order)
    last_good = max(i for i, what in enumerate(order) if what == "good")
    expect(last_good < order.index("hang 2"), f"events waited for the hung one: {order}")
    stats = (await bus.stats())[f"{topic} -> handle"]
    expect((stats.handled, stats.failed, stats.dead_lettered) == (20, 2, 1), stats)


async def _retry_holds_only_its_key(h: Harness, features: TransportFeatures) -> None:
    """With an ordering key, a retrying event holds up its own key, and only that."""
    topic = h.topic("key_retry")
    order: list[tuple[str, int, int]] = []

    async def handle(payload: dict[str, Any]) -> None:
        info = current_event()
        attempt = info.attempt if info else 0
        order.append((payload["symbol"], payload["n"], attempt))
        if payload["symbol"] == "A" and payload["n"] == 0:
            raise RuntimeError("A0 always fails")

    bus = h.bus("keyed", concurrency=2)
    bus.subscribe(
        topic, handle, ordering_key="symbol", name="handle", max_attempts=3, retry_backoff=1.0
    )
    await bus.start()
    payloads = [{"symbol": "A", "n": 0}]
    for n in range(40):
        payloads.append({"symbol": "B", "n": n})
        if n % 10 == 9:
            payloads.append({"symbol": "A", "n": n // 10 + 1})
    key = None if features.orders_unkeyed else "symbol"  # Kafka orders only keyed events
    await h.bus("publisher").publish_many(topic, payloads, ordering_key=key)

    async def done() -> bool:
        return (await bus.stats())[f"{topic} -> handle"].handled == 44

    await eventually(done, "every event of A and B handled", timeout=PATIENCE)
    final = order.index(("A", 0, 3))
    a_after = [n for symbol, n, _ in order[final + 1 :] if symbol == "A"]
    expect(a_after == [1, 2, 3, 4], f"key A out of order around its retries: {order}")
    b_before = [n for symbol, n, _ in order[:final] if symbol == "B"]
    expect(b_before == list(range(40)), f"key B waited for key A's retries: {order}")


async def _stop_leaves_retrying_unacknowledged(h: Harness, features: TransportFeatures) -> None:
    """stop() gives up an event waiting for a retry at once, unacknowledged, for a replica."""
    topic = h.topic("stop_retry")
    failed = asyncio.Event()

    async def not_yet(payload: dict[str, Any]) -> None:
        failed.set()
        raise RuntimeError("not yet")

    first = h.bus("svc", stop_timeout=30, retry_backoff_max=120.0)  # a retry in 60-120 s
    first.subscribe(topic, not_yet, name="handle", retry_backoff=120.0)
    await first.start()
    await h.bus("publisher").publish(topic, {"order": 1})
    await asyncio.wait_for(failed.wait(), 10)

    async def retrying() -> bool:
        return (await first.stats())[f"{topic} -> handle"].retrying == 1

    await eventually(retrying, "the event waiting for its retry", timeout=PATIENCE)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await first.stop()
    expect(loop.time() - started < 20, "stop() waited for a retry (or its stop_timeout)")

    attempts: list[int] = []

    async def handle(payload: dict[str, Any]) -> None:
        info = current_event()
        attempts.append(info.attempt if info else 0)

    survivor = h.bus("svc")
    survivor.subscribe(topic, handle, name="handle")
    await survivor.start()

    async def redelivered() -> bool:
        return bool(attempts)

    await eventually(redelivered, "redelivery", timeout=features.redelivery_timeout + 10)
    expect(attempts[0] >= 2, attempts)
    expect(await survivor.dead_letters(topic) == [], "a retrying event was dead-lettered")


async def _backlog_follows_the_queue(h: Harness, features: TransportFeatures) -> None:
    """Lag counts what waits for the group, and falls back to zero once it is handled."""
    if not features.reports_backlog:
        return
    topic = h.topic("backlog")
    key = f"{topic} -> handle"
    gate = asyncio.Event()
    handled = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal handled
        await gate.wait()
        handled += 1

    bus = h.bus("behind", concurrency=1, read_count=1)
    bus.subscribe(topic, handle, name="handle")
    await bus.start()
    await h.bus("publisher").publish_many(topic, [{"n": n} for n in range(200)])

    async def behind() -> bool:
        lag = (await bus.stats())[key].lag
        return lag is not None and lag > 0

    await eventually(behind, "a lag while the handler is held", timeout=PATIENCE)
    gate.set()

    async def caught_up() -> bool:
        stats = (await bus.stats())[key]
        return handled == 200 and (stats.pending, stats.lag) == (0, 0)

    await eventually(
        caught_up, "pending and lag back to 0 once all 200 were handled", timeout=PATIENCE
    )


@dataclass
class _Refusals:
    """Dead-letter writes refused while ``dead_letters_refused``; the first ``acks`` acks too."""

    dead_letters_refused: bool = True
    acks: int = 3
    dead_letter_refusals: int = 0
    dead_letters_written: int = 0
    ack_refusals: int = 0
    acknowledged: int = 0


class _RefusingSubscription(Subscription):
    """A transport's subscription whose dead-letter writes and acks fail as ``_Refusals`` says."""

    def __init__(self, inner: Subscription, refusals: _Refusals) -> None:
        self._inner = inner
        self._refusals = refusals

    async def fetch(self, max_count: int, timeout: float) -> Sequence[Delivery]:
        return await self._inner.fetch(max_count, timeout)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if self._refusals.acks:
            self._refusals.acks -= 1
            self._refusals.ack_refusals += 1
            raise TransportError("ack refused (injected by the contract check)")
        await self._inner.ack(deliveries)
        self._refusals.acknowledged += len(deliveries)

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        if self._refusals.dead_letters_refused:
            self._refusals.dead_letter_refusals += 1
            raise TransportError("dead-letter write refused (injected by the contract check)")
        await self._inner.dead_letter(delivery, record)
        self._refusals.dead_letters_written += 1

    async def close(self) -> None:
        await self._inner.close()

    async def backlog(self) -> Backlog:
        return await backlog_of(self._inner)


class _RefusingTransport(Transport):
    """A transport whose subscriptions are :class:`_RefusingSubscription`."""

    def __init__(self, inner: Transport, refusals: _Refusals) -> None:
        self._inner = inner
        self._refusals = refusals

    async def publish(self, topic: str, messages: Sequence[bytes]) -> None:
        await self._inner.publish(topic, messages)

    async def subscribe(
        self, topic: str, *, group: str, consumer: str, from_beginning: bool = False
    ) -> Subscription:
        inner = await self._inner.subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )
        return _RefusingSubscription(inner, self._refusals)

    async def read_dead_letters(
        self, topic: str, limit: int, *, start: str | None = None
    ) -> Sequence[tuple[str, bytes]]:
        store = dead_letter_store(self._inner, doing="give its dead letters back")
        return await store.read_dead_letters(topic, limit, start=start)

    async def delete_dead_letters(self, topic: str, ids: Sequence[str] | None) -> int:
        store = dead_letter_store(self._inner, doing="delete its dead letters")
        return await store.delete_dead_letters(topic, ids)

    async def close(self) -> None:
        await self._inner.close()


async def _refused_writes_are_retried(h: Harness, features: TransportFeatures) -> None:
    """A refused dead-letter write or ack is tried again until it goes; nothing runs twice.

    Meanwhile the event waiting for its dead-letter write holds no concurrency slot: with
    one slot, the other events are handled while the write is still refused.
    """
    topic = h.topic("refused")
    refusals = _Refusals()
    runs: list[int] = []

    async def handle(payload: dict[str, Any]) -> None:
        runs.append(payload["n"])
        if payload["n"] == 0:
            raise ValueError("poison")

    transport = _RefusingTransport(h.transport(), refusals)
    bus = h.bus("refused", transport=transport, concurrency=1, max_attempts=1)
    bus.subscribe(topic, handle, name="handle")
    await bus.start()
    publisher = h.bus("publisher")
    await publisher.publish(topic, {"n": 0})

    async def refused_twice() -> bool:
        return refusals.dead_letter_refusals >= 2

    await eventually(
        refused_twice, "the dead-letter write refused, then tried again", timeout=PATIENCE
    )
    await publisher.publish_many(topic, [{"n": n} for n in range(1, 21)])

    async def others_handled() -> bool:
        return sorted(runs) == list(range(21))

    await eventually(
        others_handled, "the other events handled while the write is refused", timeout=PATIENCE
    )
    expect(refusals.dead_letters_written == 0, "the dead letter was written too early")
    refusals.dead_letters_refused = False

    async def all_through() -> bool:
        return refusals.dead_letters_written == 1 and refusals.acknowledged == 20

    await eventually(
        all_through, "the dead letter written and the 20 acks sent at last", timeout=PATIENCE
    )
    expect(refusals.ack_refusals == 3, refusals)
    expect(len(await bus.dead_letters(topic)) == 1, "not dead-lettered exactly once")
    stats = (await bus.stats())[f"{topic} -> handle"]
    expect((stats.handled, stats.dead_lettered, stats.failed) == (20, 1, 1), stats)
    await bus.stop()

    again: list[int] = []

    async def replacement_handle(payload: dict[str, Any]) -> None:
        again.append(payload["n"])

    replacement = h.bus("refused")
    replacement.subscribe(topic, replacement_handle, name="handle")
    await replacement.start()
    await asyncio.sleep(features.redelivery_timeout)  # anything left pending comes back now
    expect(again == [], f"events came back after their ack or dead letter went: {again}")
    expect(sorted(runs) == list(range(21)), f"an event was handled twice: {sorted(runs)}")
    expect(len(await bus.dead_letters(topic)) == 1, "not dead-lettered exactly once")


FAULT_CHECKS: dict[str, Check] = {
    "retry_then_succeed": _retry_then_succeed,
    "dead_letter_replay_purge": _dead_letter_replay_purge,
    "retry_does_not_block_others": _retry_does_not_block_others,
    "handler_timeout": _handler_timeout,
    "retry_holds_only_its_key": _retry_holds_only_its_key,
    "stop_leaves_retrying_unacknowledged": _stop_leaves_retrying_unacknowledged,
    "backlog_follows_the_queue": _backlog_follows_the_queue,
    "refused_writes_are_retried": _refused_writes_are_retried,
}
"""Fault-tolerance checks by name, merged into ``quantum_core.testing.CHECKS``."""
