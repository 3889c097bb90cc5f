"""What the bus does when the things around a handler fail, on the in-memory transport.

A dead-letter write or an ack the broker refuses, an error that cannot describe itself, an
ordering key that is not a key, a context variable a handler leaves behind, a stop() on a
frozen broker: none of them may leave an event stuck, kill a worker or hang the process.
The contract suite (``quantum_core.testing.CHECKS``) runs the transport-facing part of these
on every transport.
"""

import asyncio
import contextvars
import json

import pytest
import structlog

from quantum_core import EventBus, MemoryTransport, current_event, trace_context
from quantum_core.bus import dispatch as dispatch_module
from quantum_core.bus._acks import AckBatcher
from quantum_core.bus.dead_letters import dead_letter_record
from quantum_core.errors import DeliveryGoneError, TransportError
from quantum_core.testing import eventually


class FlakyTransport(MemoryTransport):
    """Memory, with dead-letter writes and acks that fail while told to, counted."""

    def __init__(self):
        super().__init__()
        self.dead_letter_failures = 0  # fail this many more times
        self.dead_letter_blocked = False  # fail until unblocked
        self.dead_letter_failed = 0
        self.ack_failures = 0
        self.ack_failed = 0
        self.ack_hangs = False
        self.first_failure = asyncio.Event()

    async def subscribe(self, topic, *, group, consumer, from_beginning=False):
        subscription = await super().subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )
        dead_letter, ack = subscription.dead_letter, subscription.ack

        async def flaky_dead_letter(delivery, record):
            if self.dead_letter_blocked or self.dead_letter_failures:
                self.dead_letter_failures = max(0, self.dead_letter_failures - 1)
                self.dead_letter_failed += 1
                self.first_failure.set()
                raise TransportError("dead-letter write refused (simulated)")
            await dead_letter(delivery, record)

        async def flaky_ack(deliveries):
            if self.ack_hangs:
                await asyncio.Event().wait()  # a frozen broker: no answer, ever
            if self.ack_failures:
                self.ack_failures -= 1
                self.ack_failed += 1
                raise TransportError("XACK refused (simulated)")
            await ack(deliveries)

        subscription.dead_letter = flaky_dead_letter
        subscription.ack = flaky_ack
        return subscription

    def pending(self, topic, group):
        return len(self._topics[topic][group].pending)


# -- a dead letter or an ack that fails is tried again ------------------------------------


async def test_a_dead_letter_that_cannot_be_written_is_retried_and_holds_no_slot(log_lines):
    transport = FlakyTransport()
    transport.dead_letter_blocked = True
    bad_attempts, good = [], []

    async def handle(payload):
        if payload["bad"]:
            bad_attempts.append(current_event().attempt)
            raise ValueError("poison")
        good.append(payload["n"])

    bus = EventBus(transport, service_name="svc", max_attempts=1, concurrency=1)
    bus.subscribe("t.x", handle, name="h")
    async with bus:
        await bus.publish("t.x", {"bad": True, "n": 0}, trace_id="poison-trace")
        await asyncio.wait_for(transport.first_failure.wait(), 5)
        await bus.publish_many("t.x", [{"bad": False, "n": n} for n in range(1, 6)])
        await eventually(lambda: good == [1, 2, 3, 4, 5])  # one slot, and it is free
        await eventually(lambda: transport.dead_letter_failed >= 3)
        assert transport.dead_letters("t.x") == []
        transport.dead_letter_blocked = False
        await eventually(lambda: len(transport.dead_letters("t.x")) == 1)
        await eventually(lambda: transport.pending("t.x", "svc:h") == 0)
        stats = (await bus.stats())["t.x -> h"]
    assert bad_attempts == [1]  # the handler is not run again for a write that failed
    assert (stats.handled, stats.dead_lettered, stats.failed) == (5, 1, 1)
    (failed,) = log_lines.named("dead_letter_failed")  # once, not per try
    assert failed["level"] == "warning"
    assert failed["retry_in"] > 0
    assert failed["trace_id"] == "poison-trace"
    assert "dead-letter write refused" in str(failed["exception"])
    still = log_lines.named("dead_letter_still_failing")
    assert len(still) == transport.dead_letter_failed - 1
    assert all(line["level"] == "debug" for line in still)
    (written,) = log_lines.named("dead_letter_written")
    assert (written["level"], written["failures"]) == ("info", transport.dead_letter_failed)


async def test_stop_gives_up_a_dead_letter_that_keeps_failing_and_leaves_it_pending(log_lines):
    transport = FlakyTransport()
    transport.dead_letter_blocked = True

    async def handle(payload):
        raise ValueError("poison")

    bus = EventBus(transport, service_name="svc", max_attempts=1, stop_timeout=30)
    bus.subscribe("t.x", handle, name="h")
    await bus.start()
    await bus.publish("t.x", {"n": 1})
    await eventually(lambda: transport.dead_letter_failed >= 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bus.stop()
    assert loop.time() - started < 5  # the wait is given up at once, not waited out
    group = transport._topics["t.x"]["svc:h"]
    assert len(group.backlog) == 1  # back with the group, for another consumer
    assert transport.dead_letters("t.x") == []
    (given_up,) = log_lines.named("dead_letters_given_up_on_stop")
    assert (given_up["level"], given_up["events"]) == ("warning", 1)


async def test_a_failed_ack_is_retried_with_backoff_until_it_goes(log_lines):
    acked = []

    class Flaky:
        failures = 3

        async def ack(self, deliveries):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("broker gone")
            acked.extend(deliveries)

    batcher = AckBatcher(Flaky(), "h")
    batcher.add("first")
    await eventually(lambda: acked == ["first"])
    batcher.add("second")
    await eventually(lambda: acked == ["first", "second"])
    await batcher.flush(1.0)
    (failed,) = log_lines.named("event_ack_failed")  # once per outage
    assert (failed["level"], failed["events"], failed["handler"]) == ("warning", 1, "h")
    assert failed["retry_in"] > 0
    assert len(log_lines.named("event_ack_still_failing")) == 2
    (recovered,) = log_lines.named("event_ack_recovered")
    assert recovered["failures"] == 3


async def test_an_ack_of_deliveries_gone_elsewhere_is_not_tried_again(log_lines):
    tries = []

    class Gone:
        async def ack(self, deliveries):
            tries.append(list(deliveries))
            raise DeliveryGoneError("their channel closed; the broker delivers them again")

    batcher = AckBatcher(Gone(), "h")
    batcher.add("a")
    await eventually(lambda: tries == [["a"]])
    batcher.add("b")  # a new batch goes on its own: "a" was not kept for another try
    await eventually(lambda: tries == [["a"], ["b"]])
    await batcher.flush(1.0)
    assert tries == [["a"], ["b"]]
    assert not log_lines.named("event_ack_failed")
    lost = log_lines.named("event_acks_lost")
    assert [(line["level"], line["events"]) for line in lost] == [("warning", 1)] * 2


async def test_flush_tries_once_more_then_gives_up_within_its_time(log_lines):
    tries = []

    class Down:
        async def ack(self, deliveries):
            tries.append(list(deliveries))
            raise ConnectionError("broker gone")

    batcher = AckBatcher(Down(), "h")
    batcher.add("a")
    await eventually(lambda: len(tries) == 1)  # now waiting to try again
    batcher.add("b")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await batcher.flush(2.0)
    assert loop.time() - started < 1.0  # a broker that answers "no" is not waited for
    assert tries == [["a"], ["a"], ["b"]]  # each batch tried once more, none waited for
    (given_up,) = log_lines.named("event_acks_given_up")
    assert (given_up["level"], given_up["events"]) == ("warning", 2)


async def test_flush_on_a_frozen_broker_returns_within_its_time():
    class Frozen:
        async def ack(self, deliveries):
            await asyncio.Event().wait()

    batcher = AckBatcher(Frozen(), "h")
    batcher.add("a")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(batcher.flush(0.3), 5)
    assert 0.25 < loop.time() - started < 1.0


async def test_flush_returns_when_the_sender_was_cancelled_before_it_ran():
    acked = []

    class Fine:
        async def ack(self, deliveries):
            acked.extend(deliveries)

    batcher = AckBatcher(Fine(), "h")
    batcher.add("a")
    batcher._batcher._sender.cancel()  # as asyncio.run's shutdown does, before its first step
    await asyncio.wait_for(batcher.flush(1.0), 5)
    assert acked == ["a"]  # tried once more at stop


async def test_stop_returns_within_its_timeout_when_the_broker_froze():
    transport = FlakyTransport()
    handled = []

    async def handle(payload):
        handled.append(payload["n"])

    bus = EventBus(transport, service_name="svc", stop_timeout=1)
    bus.subscribe("t.x", handle, name="h")
    await bus.start()
    transport.ack_hangs = True
    await bus.publish_many("t.x", [{"n": n} for n in range(5)])
    await eventually(lambda: len(handled) == 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(bus.stop(), 10)
    assert loop.time() - started < 2.0
    assert len(transport._topics["t.x"]["svc:h"].backlog) == 5  # unacknowledged: back


# -- errors that cannot describe themselves -------------------------------------------------


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("__str__ is broken too")


class UnrepresentableError(Exception):
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


class Halt(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


def test_a_dead_letter_record_describes_an_error_whose_str_raises():
    for error, expected in [
        (UnprintableError("boom"), "UnprintableError('boom')"),
        (UnrepresentableError("boom"), "<UnrepresentableError"),
    ]:
        record = dead_letter_record(
            service="svc",
            handler="h",
            event_type="t.x",
            envelope=None,
            data=b"{}",
            attempts=1,
            error=error,
        )
        assert json.loads(record)["error"].startswith(expected)


@pytest.mark.parametrize(
    ("error", "error_type"),
    [(UnprintableError("boom"), "UnprintableError"), (Halt("stop"), "Halt")],
)
async def test_an_odd_error_is_retried_then_dead_lettered_like_any_other(error, error_type):
    attempts = []

    async def handle(payload):
        attempts.append(current_event().attempt)
        raise error

    bus = EventBus("memory://", service_name="svc", max_attempts=2, retry_backoff=0.001)
    bus.subscribe("t.x", handle, name="h")
    async with bus:
        await bus.publish("t.x", {"n": 1})
        await eventually(lambda: bus.dead_letters("t.x"), "the event dead-lettered")
        (letter,) = await bus.dead_letters("t.x")
    assert attempts == [1, 2]
    assert letter.error_type == error_type
    assert letter.error  # described somehow: never empty, never a crash


# -- ordering keys that are not keys, and a fetch loop that must not die --------------------


def unhashable_key(payload):
    return payload["k"]  # a list for the bad event


def raising_key(payload):
    if isinstance(payload["k"], list):
        raise KeyError("symbol")
    return payload["k"]


@pytest.mark.parametrize("key", [unhashable_key, raising_key])
async def test_a_bad_ordering_key_dead_letters_that_event_and_the_others_flow(key, log_lines):
    handled = []

    async def handle(payload):
        handled.append(payload["n"])

    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", handle, name="h", ordering_key=key)
    async with bus:
        await bus.publish_many(
            "t.x", [{"k": "a", "n": 0}, {"k": ["x"], "n": 1}, {"k": "a", "n": 2}]
        )
        await eventually(lambda: handled == [0, 2])
        await eventually(lambda: bus.dead_letters("t.x"), "the event dead-lettered")
        (letter,) = await bus.dead_letters("t.x")
        assert bus.is_running
        await bus.publish("t.x", {"k": "b", "n": 3})  # the subscription is alive
        await eventually(lambda: handled == [0, 2, 3])
    assert "ordering_key" in letter.error
    assert '"n":1' in letter.original
    (failed,) = log_lines.named("ordering_key_failed")
    assert failed["level"] == "error"


async def test_a_fetch_loop_that_dies_of_a_bug_is_logged_and_restarted(log_lines, monkeypatch):
    dispatch = dispatch_module.Consumer._dispatch
    bugs = [RuntimeError("a bug in the bus")]

    def buggy_dispatch(self, delivery):
        if bugs:
            raise bugs.pop()
        dispatch(self, delivery)

    monkeypatch.setattr(dispatch_module.Consumer, "_dispatch", buggy_dispatch)
    handled = []

    async def handle(payload):
        handled.append(payload["n"])

    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", handle, name="h")
    async with bus:
        await bus.publish("t.x", {"n": 1})
        await eventually(lambda: log_lines.named("consumer_loop_failed"))
        await bus.publish("t.x", {"n": 2})
        await eventually(lambda: 2 in handled)
    (failed,) = log_lines.named("consumer_loop_failed")
    assert (failed["level"], failed["handler"]) == ("error", "h")
    assert "a bug in the bus" in str(failed["exception"])


# -- every handler run starts from a clean context ------------------------------------------

user_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_var", default=None)


@pytest.mark.parametrize("ordering_key", [None, "k"])
async def test_context_set_by_one_handler_is_not_seen_by_the_next(ordering_key):
    seen = []

    async def handle(payload):
        info = current_event()
        bound = structlog.contextvars.get_contextvars()
        seen.append((payload["n"], user_var.get(), bound, trace_context.get() == info.trace_id))
        user_var.set(payload["n"])
        structlog.contextvars.bind_contextvars(user=payload["n"])
        await asyncio.sleep(0)  # the run's context holds across its waits
        assert user_var.get() == payload["n"]
        if payload["n"] == 0 and info.attempt == 1:
            raise RuntimeError("again")  # the retry starts clean too

    bus = EventBus("memory://", service_name="svc", concurrency=1, retry_backoff=0.001)
    bus.subscribe("t.x", handle, name="h", ordering_key=ordering_key)
    async with bus:
        await bus.publish_many("t.x", [{"n": n, "k": "a"} for n in range(4)])
        await eventually(lambda: len(seen) == 5)
    assert sorted(seen, key=lambda s: s[0]) == [(0, None, {}, True)] + [
        (n, None, {}, True) for n in range(4)
    ]


class SlowBrokerTransport(MemoryTransport):
    """Memory, whose subscriptions take ``delay`` seconds to close and to tell their backlog."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    async def subscribe(self, topic, *, group, consumer, from_beginning=False):
        subscription = await super().subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )
        close, backlog = subscription.close, subscription.backlog

        async def slow_close():
            await asyncio.sleep(self.delay)
            await close()

        async def slow_backlog():
            await asyncio.sleep(self.delay)
            return await backlog()

        subscription.close = slow_close
        subscription.backlog = slow_backlog
        return subscription


async def test_stop_and_stats_wait_for_the_slowest_subscription_not_for_their_sum():
    """On a broker that answers slowly, stop() and stats() cost one wait, not one each."""

    async def handler(payload):
        pass

    bus = EventBus(SlowBrokerTransport(delay=0.5), service_name="svc")
    for n in range(4):
        bus.subscribe(f"t.{n}", handler, name=f"h{n}")
    loop = asyncio.get_running_loop()
    await bus.start()
    started = loop.time()
    assert len(await bus.stats()) == 4
    assert len(await bus.backlog()) == 4
    took_stats = loop.time() - started
    started = loop.time()
    await bus.stop()
    took_stop = loop.time() - started
    assert took_stats < 1.6, f"stats() and backlog() took {took_stats:.2f} s for 4 x 0.5 s each"
    assert took_stop < 1.2, f"stop() took {took_stop:.2f} s for 4 closes of 0.5 s"
