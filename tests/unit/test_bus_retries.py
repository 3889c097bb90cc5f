"""Retries, handler time limits, dead letters, replay and stats on the in-memory transport.

The same semantics run on every transport through the contract suite
(quantum_core.testing.CHECKS); these tests cover the details and the edges.
"""

import asyncio
import math

import pytest

from quantum_core import EventBus, MemoryTransport, TransportError, current_event
from quantum_core.bus import DeadLetter, HandlerTimeoutError, SubscriptionStats, Transport
from quantum_core.bus import dispatch as dispatch_module
from quantum_core.bus._retry import RetryPolicy
from quantum_core.bus.dead_letters import REPLAY_FOR
from quantum_core.testing import eventually


def attempt_now():
    info = current_event()
    assert info is not None
    return info.attempt


# -- retries --------------------------------------------------------------------------------


async def test_a_handler_that_fails_twice_is_handled_on_its_third_attempt(log_lines):
    attempts = []

    async def flaky(payload):
        attempts.append(attempt_now())
        if len(attempts) < 3:
            raise ConnectionError(f"exchange down ({len(attempts)})")

    bus = EventBus("memory://", service_name="svc", retry_backoff=0.001)
    bus.subscribe("t.x", flaky, name="flaky")
    async with bus:
        await bus.publish("t.x", {"n": 1}, trace_id="flaky-trace")
        await eventually(lambda: len(attempts) == 3)
        await eventually(async_stat(bus, "t.x -> flaky", "handled", 1))
        await eventually(async_stat(bus, "t.x -> flaky", "pending", 0))  # acks go async
        stats = (await bus.stats())["t.x -> flaky"]
        assert await bus.dead_letters("t.x") == []
    assert attempts == [1, 2, 3]
    assert stats == SubscriptionStats(
        event_type="t.x",
        name="flaky",
        handled=1,
        failed=2,
        retried=2,
        dead_lettered=0,
        retrying=0,
        pending=0,
        lag=0,
    )
    failures = log_lines.named("event_handler_failed")
    assert [(f["level"], f["attempt"], f["max_attempts"]) for f in failures] == [
        ("warning", 1, 5),
        ("warning", 2, 5),
    ]
    assert all(f["trace_id"] == "flaky-trace" and f["retry_in"] > 0 for f in failures)
    assert "exchange down (1)" in str(failures[0]["exception"])


def async_stat(bus, key, field, value):
    async def check():
        stats = await bus.stats()
        return key in stats and getattr(stats[key], field) == value

    return check


async def test_an_always_failing_handler_is_dead_lettered_after_its_last_attempt(log_lines):
    transport = MemoryTransport()
    handled = []

    async def broken(payload):
        if payload["n"] == 1:
            raise RuntimeError("model exploded")
        handled.append(payload["n"])

    bus = EventBus(transport, service_name="svc", max_attempts=3, retry_backoff=0.001)
    bus.subscribe("t.x", broken, name="broken")
    async with bus:
        failing_id = await bus.publish("t.x", {"n": 1}, trace_id="trace-of-the-failure")
        await bus.publish("t.x", {"n": 2})
        await eventually(async_stat(bus, "t.x -> broken", "dead_lettered", 1))
        (letter,) = await bus.dead_letters("t.x")
    assert handled == [2]
    assert isinstance(letter, DeadLetter)
    assert letter.event_id == failing_id
    assert letter.trace_id == "trace-of-the-failure"
    assert (letter.service, letter.handler, letter.event_type) == ("svc", "broken", "t.x")
    assert (letter.attempts, letter.error_type, letter.error) == (
        3,
        "RuntimeError",
        "model exploded",
    )
    assert 'raise RuntimeError("model exploded")' in letter.traceback
    assert letter.failed_at.endswith("Z")
    assert '"n":1' in letter.original
    assert transport.dead_letters("t.x")[0]["attempts"] == 3  # the raw record, for tests
    last = log_lines.named("event_handler_failed")[-1]
    assert (last["level"], last["attempt"], last["retry_in"]) == ("error", 3, None)


async def test_backoff_doubles_with_jitter_and_is_capped():
    policy = RetryPolicy(max_attempts=10, backoff=0.1, backoff_max=1.0, timeout=None)
    for attempt, nominal in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(nominal * 0.5 <= d <= nominal for d in delays), attempt
        assert len(set(delays)) > 1  # jittered
    assert policy.delay(10_000) <= 1.0  # no overflow however high the attempt


async def test_a_redelivered_event_starts_at_its_delivery_count_and_keeps_its_budget():
    transport = MemoryTransport()
    first_attempts, later_attempts = [], []

    async def fails_once(payload):
        first_attempts.append(attempt_now())
        raise RuntimeError("first replica fails")

    first = EventBus(transport, service_name="svc", retry_backoff=60, retry_backoff_max=60)
    first.subscribe("t.x", fails_once, name="h")
    await first.start()
    await first.publish("t.x", {"n": 1})
    await eventually(async_stat(first, "t.x -> h", "retrying", 1))
    await first.stop()  # the retry is given up: unacknowledged, for another replica

    async def always_fails(payload):
        later_attempts.append(attempt_now())
        raise RuntimeError("second replica fails too")

    second = EventBus(transport, service_name="svc", max_attempts=3, retry_backoff=0.001)
    second.subscribe("t.x", always_fails, name="h")
    async with second:
        await eventually(async_stat(second, "t.x -> h", "dead_lettered", 1))
        (letter,) = await second.dead_letters("t.x")
    assert first_attempts == [1]
    assert later_attempts == [2, 3]  # one delivery spent: two attempts left of three
    assert letter.attempts == 3


async def test_an_event_delivered_more_often_than_max_attempts_still_gets_one_attempt():
    transport = MemoryTransport()
    await transport.subscribe("t.x", group="svc:h", consumer="ghost")
    await EventBus(transport, service_name="pub").publish("t.x", {"n": 1})
    for n in range(3):  # three consumers died holding it
        subscription = await transport.subscribe("t.x", group="svc:h", consumer=f"ghost-{n}")
        assert await subscription.fetch(1, 1)
        await subscription.close()
    attempts = []

    async def fails(payload):
        attempts.append(attempt_now())
        raise RuntimeError("still broken")

    bus = EventBus(transport, service_name="svc", max_attempts=2)
    bus.subscribe("t.x", fails, name="h")
    async with bus:
        await eventually(lambda: len(transport.dead_letters("t.x")) == 1)
    assert attempts == [4]
    assert transport.dead_letters("t.x")[0]["attempts"] == 4


async def test_per_subscription_options_override_the_bus_defaults():
    bus = EventBus(
        "memory://",
        service_name="svc",
        max_attempts=7,
        retry_backoff=0.5,
        retry_backoff_max=4,
        handler_timeout=math.inf,
    )

    async def handler(payload):
        return None

    bus.subscribe("t.x", handler, name="defaults")
    bus.subscribe("t.x", handler, name="own", max_attempts=2, retry_backoff=0, timeout=3)
    bus.subscribe("t.x", handler, name="unlimited", timeout=math.inf)
    defaults, own, unlimited = (route.retry for route in bus._routes)
    assert defaults == RetryPolicy(max_attempts=7, backoff=0.5, backoff_max=4.0, timeout=None)
    assert own == RetryPolicy(max_attempts=2, backoff=0.0, backoff_max=4.0, timeout=3.0)
    assert unlimited.timeout is None
    assert EventBus("memory://", service_name="svc")._retry == RetryPolicy(
        max_attempts=5, backoff=0.1, backoff_max=30.0, timeout=30.0
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, r"max_attempts must be a whole number >= 1, got 0"),
        ({"max_attempts": 2.5}, r"max_attempts must be a whole number"),
        ({"max_attempts": True}, r"max_attempts must be a whole number"),
        ({"retry_backoff": -1}, r"retry_backoff must be a number of seconds >= 0, got -1"),
        ({"retry_backoff": math.inf}, r"retry_backoff must be a number of seconds"),
        ({"retry_backoff_max": "1"}, r"retry_backoff_max must be a number of seconds"),
        ({"handler_timeout": 0}, r"handler_timeout must be a number of seconds > 0 \(or math"),
        ({"handler_timeout": math.nan}, r"handler_timeout must be"),
    ],
)
def test_bus_retry_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        EventBus("memory://", service_name="svc", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": -1}, r"max_attempts must be a whole number >= 1"),
        ({"retry_backoff": -0.1}, r"retry_backoff must be a number of seconds >= 0"),
        ({"timeout": 0}, r"timeout must be a number of seconds > 0"),
        ({"timeout": -5}, r"timeout must be a number of seconds > 0"),
    ],
)
def test_subscription_retry_options_are_checked(options, message):
    async def handler(payload):
        return None

    bus = EventBus("memory://", service_name="svc")
    with pytest.raises(ValueError, match=message):
        bus.subscribe("t.x", handler, **options)


# -- time limits and odd failures -----------------------------------------------------------


async def test_a_hung_handler_is_cancelled_and_counted_as_a_failed_attempt():
    attempts = []

    async def hangs_once(payload):
        attempts.append(attempt_now())
        if len(attempts) == 1:
            await asyncio.Event().wait()

    bus = EventBus("memory://", service_name="svc", retry_backoff=0.001)
    bus.subscribe("t.x", hangs_once, name="h", timeout=0.05)
    async with bus:
        await bus.publish("t.x", {})
        await eventually(async_stat(bus, "t.x -> h", "handled", 1))
        stats = (await bus.stats())["t.x -> h"]
    assert attempts == [1, 2]
    assert (stats.failed, stats.retried) == (1, 1)


async def test_a_timeout_is_a_handler_timeout_error_and_a_handlers_own_is_not():
    transport = MemoryTransport()

    async def hangs(payload):
        await asyncio.Event().wait()

    async def own_timeout(payload):
        raise TimeoutError("exchange did not answer")

    bus = EventBus(transport, service_name="svc", max_attempts=1)
    bus.subscribe("t.x", hangs, name="hangs", timeout=0.05)
    bus.subscribe("t.x", own_timeout, name="own")
    async with bus:
        await bus.publish("t.x", {})
        await eventually(lambda: len(transport.dead_letters("t.x")) == 2)
        letters = {d.handler: d for d in await bus.dead_letters("t.x")}
    assert letters["hangs"].error_type == "HandlerTimeoutError"
    assert letters["hangs"].error == "handler did not finish within 0.05 s; cancelled"
    assert "hangs" in letters["hangs"].traceback  # where it hung
    assert letters["own"].error_type == "TimeoutError"
    assert letters["own"].error == "exchange did not answer"
    assert issubclass(HandlerTimeoutError, TimeoutError)


async def test_a_handler_that_raises_cancelled_error_itself_is_a_failure_not_a_crash():
    transport = MemoryTransport()

    async def cancels_itself(payload):
        raise asyncio.CancelledError

    bus = EventBus(transport, service_name="svc", max_attempts=2, retry_backoff=0.001)
    bus.subscribe("t.x", cancels_itself, name="h")
    async with bus:
        await bus.publish("t.x", {})
        await eventually(lambda: len(transport.dead_letters("t.x")) == 1)
        assert (await bus.stats())["t.x -> h"].failed == 2
    assert transport.dead_letters("t.x")[0]["error_type"] == "CancelledError"


# -- retries hold up nothing else -------------------------------------------------------------


async def test_a_retrying_key_holds_up_only_its_key_even_beyond_the_fetch_buffer():
    order = []

    async def handle(payload):
        order.append((payload["k"], payload["n"], attempt_now()))
        if payload == {"k": "A", "n": 0}:
            raise RuntimeError("A0 fails")

    # concurrency 1: four events fetched ahead; thirty of key A wait behind A0's retries.
    bus = EventBus("memory://", service_name="svc", concurrency=1, read_count=5)
    bus.subscribe("t.x", handle, name="h", ordering_key="k", max_attempts=2, retry_backoff=2)
    payloads = [{"k": "A", "n": n} for n in range(31)] + [{"k": "B", "n": n} for n in range(10)]
    async with bus:
        await bus.publish_many("t.x", payloads)
        await eventually(lambda: len(order) == 42)
    last_a0 = order.index(("A", 0, 2))
    assert [n for k, n, _ in order[:last_a0] if k == "B"] == list(range(10))
    assert [n for k, n, _ in order[last_a0 + 1 :]] == list(range(1, 31))


async def test_too_many_events_waiting_for_retries_stop_the_fetching(monkeypatch):
    monkeypatch.setattr(dispatch_module, "_PARKED_MIN", 5)
    monkeypatch.setattr(dispatch_module, "_PARKED_PER_SLOT", 1)
    transport = MemoryTransport()

    async def fails(payload):
        raise RuntimeError("downstream is down")

    bus = EventBus(transport, service_name="svc", concurrency=1, retry_backoff=30)
    bus.subscribe("t.x", fails, name="h")
    async with bus:
        await bus.publish_many("t.x", [{"n": n} for n in range(20)])
        await eventually(async_stat(bus, "t.x -> h", "retrying", 5))
        await asyncio.sleep(0.1)  # the consumer would take more now, if it did
        stats = (await bus.stats())["t.x -> h"]
    assert stats.retrying == 5
    assert stats.lag == 15
    assert transport.dead_letters("t.x") == []  # stop() gave the retries up, unacknowledged


async def test_stop_during_a_keyed_retry_leaves_the_key_for_a_replica_in_order():
    transport = MemoryTransport()

    async def fails(payload):
        raise RuntimeError("not now")

    first = EventBus(transport, service_name="svc", retry_backoff=60, retry_backoff_max=60)
    first.subscribe("t.x", fails, name="h", ordering_key="k")
    await first.start()
    await first.publish_many("t.x", [{"k": "A", "n": n} for n in range(5)])
    await eventually(async_stat(first, "t.x -> h", "retrying", 1))
    assert first._consumers[0].in_flight == 5
    await first.stop()

    seen = []

    async def handle(payload):
        seen.append((payload["n"], attempt_now()))

    second = EventBus(transport, service_name="svc")
    second.subscribe("t.x", handle, name="h", ordering_key="k")
    async with second:
        await eventually(lambda: len(seen) == 5)
    assert seen == [(0, 2), (1, 2), (2, 2), (3, 2), (4, 2)]
    assert transport.dead_letters("t.x") == []


# -- dead letters: list, replay, purge --------------------------------------------------------


async def test_replay_goes_to_the_failed_group_only_with_the_same_ids():
    transport = MemoryTransport()
    fixed = False
    risk_seen, audit_seen = [], []

    async def risk(payload):
        if not fixed:
            raise ValueError("limits not loaded")
        info = current_event()
        if payload["symbol"] == "BTCUSDT":
            risk_seen.append((info.id, info.trace_id, info.attempt, dict(info.headers)))

    async def audit(payload):
        audit_seen.append(payload)

    risk_bus = EventBus(transport, service_name="risk", max_attempts=1)
    risk_bus.subscribe("ai.signal.generated", risk, name="governor")
    audit_bus = EventBus(transport, service_name="audit")
    audit_bus.subscribe("ai.signal.generated", audit)
    async with risk_bus, audit_bus:
        event_id = await audit_bus.publish(
            "ai.signal.generated", {"symbol": "BTCUSDT"}, trace_id="t-1", headers={"h": "v"}
        )
        await eventually(lambda: transport.dead_letters("ai.signal.generated"))
        (letter,) = await audit_bus.dead_letters("ai.signal.generated")  # any bus can look
        fixed = True
        assert await audit_bus.replay_dead_letter("ai.signal.generated", letter.id) == event_id
        await eventually(lambda: risk_seen)
        await audit_bus.publish("ai.signal.generated", {"symbol": "ETHUSDT"})
        await eventually(lambda: len(audit_seen) == 2)
    assert risk_seen == [(event_id, "t-1", 1, {"h": "v", REPLAY_FOR: "risk:governor"})]
    assert [p["symbol"] for p in audit_seen] == ["BTCUSDT", "ETHUSDT"]
    assert await audit_bus.dead_letters("ai.signal.generated") == []


async def test_replay_and_listing_errors_say_what_to_do():
    transport = MemoryTransport()
    bus = EventBus(transport, service_name="svc")
    with pytest.raises(LookupError, match=r"no dead letter '7' for 't.x'; list them with"):
        await bus.replay_dead_letter("t.x", "7")
    with pytest.raises(ValueError, match=r"not a dead-letter id of the memory transport"):
        await bus.dead_letters("t.x", after="1700000000000-0")
    with pytest.raises(ValueError, match=r"limit must be a whole number >= 1"):
        await bus.dead_letters("t.x", limit=0)
    with pytest.raises(ValueError, match=r"invalid event type"):
        await bus.purge_dead_letters("bad type")
    await bus.stop()
    with pytest.raises(RuntimeError, match=r"stopped"):
        await bus.replay_dead_letter("t.x", "1")


async def test_a_malformed_entry_is_dead_lettered_counted_and_cannot_be_replayed():
    transport = MemoryTransport()

    async def handler(payload):
        return None

    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", handler, name="h")
    async with bus:
        await transport.publish("t.x", [b"\xff not json"])
        await eventually(async_stat(bus, "t.x -> h", "dead_lettered", 1))
        (letter,) = await bus.dead_letters("t.x")
        assert (letter.event_id, letter.trace_id, letter.attempts) == (None, None, 1)
        with pytest.raises(ValueError, match=r"not an event envelope .* only purged"):
            await bus.replay_dead_letter("t.x", letter.id)
        assert await bus.purge_dead_letters("t.x") == 1
        assert await bus.purge_dead_letters("t.x") == 0


async def test_records_that_are_not_ours_are_listed_as_unreadable():
    transport = MemoryTransport()
    transport._dead_letters.set_aside("t.x", b"not json at all")
    transport._dead_letters.set_aside("t.x", b'{"handler": 5, "attempts": "three"}')
    bus = EventBus(transport, service_name="svc")
    first, second = await bus.dead_letters("t.x")
    assert (first.error_type, first.original) == ("UnreadableDeadLetter", "not json at all")
    assert (second.handler, second.attempts, second.event_type) == ("", 0, "t.x")
    assert await transport.delete_dead_letters("t.x", [first.id, first.id, "999"]) == 1


async def test_memory_dead_letters_are_bounded_like_a_broker():
    transport = MemoryTransport(max_backlog=3)
    for n in range(5):
        transport._dead_letters.set_aside("t.x", f'{{"error": "{n}"}}'.encode())
    bus = EventBus(transport, service_name="svc")
    assert [d.error for d in await bus.dead_letters("t.x")] == ["2", "3", "4"]


async def test_a_transport_without_dead_letter_reading_says_what_to_implement():
    class Minimal(Transport):
        async def publish(self, topic, messages):
            return None

        async def subscribe(self, topic, *, group, consumer, from_beginning=False):
            raise NotImplementedError

    bus = EventBus(Minimal(), service_name="svc")
    with pytest.raises(NotImplementedError, match=r"Minimal does not give its dead letters back"):
        await bus.dead_letters("t.x")
    with pytest.raises(NotImplementedError, match=r"implement read_dead_letters and delete"):
        await bus.purge_dead_letters("t.x")


# -- stats --------------------------------------------------------------------------------------


async def test_stats_are_keyed_like_backlog_and_survive_a_broker_that_cannot_tell(log_lines):
    async def handler(payload):
        return None

    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("t.x", handler, name="a")
    bus.subscribe("t.y", handler, name="b")
    assert await bus.stats() == {}
    async with bus:
        assert set(await bus.stats()) == set(await bus.backlog()) == {"t.x -> a", "t.y -> b"}

        async def broken_backlog():
            raise TransportError("broker unreachable")

        bus._consumers[0].subscription.backlog = broken_backlog
        stats = await bus.stats()
    assert (stats["t.x -> a"].pending, stats["t.x -> a"].lag) == (None, None)
    assert stats["t.y -> b"].pending == 0
    assert any(line["event"] == "event_backlog_unavailable" for line in log_lines())
    assert await bus.stats() == {}  # a stopped bus has no running subscriptions
