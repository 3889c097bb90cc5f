"""The EventBus on a real NATS JetStream: URLs, secrets, layout, recovery, dead letters, extras.

The contract suite (tests/contract) proves the common promises; these cover what is
particular to NATS.
"""

import asyncio
import subprocess
import sys
import time

import nats
import pytest
from nats.js import api

from quantum_core import (
    Backlog,
    EventBus,
    NatsJetStreamTransport,
    TransportError,
    transport_from_url,
)
from quantum_core.bus.abilities import HandledRecords
from quantum_core.bus.envelope import encode_events
from quantum_core.testing import EventRecorder, eventually


@pytest.fixture
async def js(nats_url):
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def make(nats_url, nats_prefix):
    made = []

    def make_transport(**options):
        options.setdefault("prefix", nats_prefix)
        transport = NatsJetStreamTransport(nats_url, **options)
        made.append(transport)
        return transport

    yield make_transport
    for transport in made:
        await transport.close()


# -- URLs, options and secrets -----------------------------------------------------------------


def test_url_options_reach_the_transport():
    transport = transport_from_url(
        "nats://127.0.0.1:4222?prefix=trading&ack_wait=12.5&max_ack_pending=500"
    )
    assert isinstance(transport, NatsJetStreamTransport)
    assert (transport.prefix, transport.ack_wait, transport.max_ack_pending) == (
        "trading",
        12.5,
        500,
    )
    assert transport_from_url("nats://127.0.0.1:4222?claim_idle=3").ack_wait == 3.0
    defaults = transport_from_url("nats://127.0.0.1:4222")
    assert (defaults.prefix, defaults.ack_wait) == ("quantum_core", 30.0)
    timed = transport_from_url("nats://127.0.0.1:4222?ping_interval=0.5&max_outstanding_pings=4")
    assert (timed.liveness.ping_interval, timed.liveness.max_outstanding_pings) == (0.5, 4)


def test_a_silent_connection_is_given_up_within_15_seconds_by_default():
    liveness = transport_from_url("nats://127.0.0.1:4222").liveness
    assert (liveness.ping_interval, liveness.max_outstanding_pings) == (5.0, 2)
    assert liveness.bound == 15.0  # nats-py alone: 120 s x (2 + 1), six minutes


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "nats://127.0.0.1:4222?bogus=1",
            r"unknown nats:// URL option 'bogus'; known options: ack_wait, claim_idle",
        ),
        (
            "nats://127.0.0.1:4222?ack_wait=soon",
            r"ack_wait='soon' is not valid: expected a number of seconds > 0",
        ),
        ("nats://127.0.0.1:4222?ack_wait=-1", r"ack_wait='-1' is not valid"),
        ("nats://127.0.0.1:4222?max_ack_pending=0", r"max_ack_pending='0'.*whole number >= 1"),
        ("nats://127.0.0.1:4222?storage=tape", r"storage='tape'.*'file' or 'memory'"),
        (
            "nats://127.0.0.1:4222?ack_wait=1&claim_idle=2",
            r"'ack_wait' is given twice \(claim_idle is ack_wait\)",
        ),
        (
            "nats://127.0.0.1:4222?ping_interval=0",
            r"ping_interval='0' is not valid: expected a number of seconds > 0",
        ),
        ("nats://127.0.0.1:4222?max_outstanding_pings=0", r"max_outstanding_pings='0'.*>= 1"),
        ("nats://127.0.0.1:4222?prefix=a.b", r"prefix must be 1-64 letters"),
        ("nats://?prefix=x", r"needs a host"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        transport_from_url(url)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="ack_wait must be a number of seconds > 0"):
        NatsJetStreamTransport("nats://127.0.0.1:4222", ack_wait=0)
    with pytest.raises(ValueError, match="maxlen must be a whole number >= 1"):
        NatsJetStreamTransport("nats://127.0.0.1:4222", maxlen=0)
    with pytest.raises(TypeError, match="takes a nats:// URL or a connected"):
        NatsJetStreamTransport(42)


async def test_the_password_never_shows():
    secret = "s3cr3t-Pa55"  # noqa: S105 - a made-up password, to look for
    url = f"nats://alice:{secret}@127.0.0.1:1,bob:{secret}@127.0.0.1:2?prefix=p"
    transport = transport_from_url(url)
    assert secret not in repr(transport)
    assert "alice:***@127.0.0.1:1" in repr(transport)
    with pytest.raises(ValueError, match="ack_wait='x'") as bad_option:
        transport_from_url(f"nats://alice:{secret}@127.0.0.1:4222?ack_wait=x")
    assert secret not in str(bad_option.value)
    with pytest.raises(TransportError) as unreachable:
        await transport.ping()  # nothing listens on ports 1 and 2
    assert secret not in str(unreachable.value)
    assert secret not in repr(unreachable.value.__cause__)
    assert "alice:***@" in str(unreachable.value)
    bus = EventBus(url, service_name="svc")
    assert secret not in repr(bus)
    await bus.stop()


def test_missing_extra_names_it():
    code = """
import sys
sys.modules["nats"] = None  # as if nats-py were not installed
import quantum_core
from quantum_core import NatsJetStreamTransport, transport_from_url
for attempt in (lambda: NatsJetStreamTransport(), lambda: transport_from_url("nats://h:4222")):
    try:
        attempt()
    except ImportError as exc:
        assert "pip install 'quantum-core-sdk[nats]'" in str(exc), exc
    else:
        raise AssertionError("no ImportError")
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


# -- the layout on the server ------------------------------------------------------------------


async def test_layout_streams_subjects_and_consumers(make, js, nats_prefix):
    bus = EventBus(make(ack_wait=7), service_name="risk")
    recorder = EventRecorder()
    bus.subscribe("ai.signal.generated", recorder, name="on_signal")
    bus.subscribe("ai.signal.generated", recorder, name="replay", from_beginning=True)
    async with bus:
        await bus.publish("ai.signal.generated", {"n": 1})
        await recorder.wait_for(2)
    stream = await js.stream_info(nats_prefix)
    assert stream.config.subjects == [f"{nats_prefix}.events.>"]
    last = await js.get_last_msg(nats_prefix, f"{nats_prefix}.events.ai.signal.generated")
    assert b'"payload":{"n":1}' in last.data
    consumers = {c.config.durable_name: c for c in await js.consumers_info(nats_prefix)}
    assert len(consumers) == 2
    on_signal = next(c for c in consumers.values() if "on_signal" in c.config.description)
    assert on_signal.name.startswith("risk_on_signal__ai_signal_generated_")
    assert on_signal.config.filter_subject == f"{nats_prefix}.events.ai.signal.generated"
    assert on_signal.config.deliver_policy == api.DeliverPolicy.NEW
    assert on_signal.config.ack_policy == api.AckPolicy.EXPLICIT
    assert on_signal.config.ack_wait == 7
    assert on_signal.config.max_deliver == -1
    assert on_signal.num_ack_pending == 0
    replay = next(c for c in consumers.values() if "replay" in c.config.description)
    assert replay.config.deliver_policy == api.DeliverPolicy.ALL


async def test_a_client_passed_in_is_not_closed(nats_url, nats_prefix):
    client = await nats.connect(nats_url)
    try:
        transport = NatsJetStreamTransport(client, prefix=nats_prefix)
        await client.request("$JS.API.INFO", b"")  # nats-py's own reply inbox, made once
        subscriptions_before = {sub.subject for sub in client._subs.values()}
        bus = EventBus(transport, service_name="svc")
        recorder = EventRecorder()
        bus.subscribe("orders", recorder)
        async with bus:
            await bus.publish("orders", {"n": 1})
            await recorder.wait_for(1)
        await transport.close()
        assert client.is_connected
        # the transport's inboxes are gone
        assert {sub.subject for sub in client._subs.values()} == subscriptions_before
        assert "a client it was given" in repr(transport)
    finally:
        await client.close()


async def test_the_transport_closes_the_connection_it_opened(make):
    transport = make()
    await transport.ping()
    client = transport._state.client
    await transport.close()
    assert client.is_closed


# -- delivery ------------------------------------------------------------------------------


async def test_a_slow_handler_is_kept_alive_past_ack_wait(make):
    """A handler longer than ack_wait: in-progress acks keep the event from a second replica."""
    handled = []

    async def slow(payload):
        handled.append(payload["n"])
        await asyncio.sleep(3.5)

    replicas = []
    for _ in range(2):
        bus = EventBus(make(ack_wait=1), service_name="exec", handler_timeout=30)
        bus.subscribe("orders", slow, name="slow")
        replicas.append(bus)
        await bus.start()
    try:
        await EventBus(make(), service_name="pub").publish("orders", {"n": 1})
        await asyncio.sleep(5)
        assert handled == [1]
    finally:
        for bus in replicas:
            await bus.stop()


async def test_a_lost_consumer_is_recreated_from_the_stream_start(make, js, nats_prefix, log_lines):
    # In memory: nats-server 2.9 may refuse to delete a file consumer whose state it is writing
    # at that moment ("unlinkat ...: directory not empty", seen once in a full run).
    recorder = EventRecorder()
    bus = EventBus(make(storage="memory"), service_name="exec")
    bus.subscribe("orders", recorder, name="handle")
    publisher = EventBus(make(storage="memory"), service_name="pub")
    async with bus:
        await publisher.publish("orders", {"n": 1})
        await recorder.wait_for(1)
        (consumer,) = await js.consumers_info(nats_prefix)
        await js.delete_consumer(nats_prefix, consumer.name)
        await publisher.publish("orders", {"n": 2})  # published while the group is gone
        await recorder.wait_for(3, timeout=15)
    # Recreated from the start: the event handled before the loss comes again, none is lost.
    assert sorted(p["n"] for p in recorder.payloads) == [1, 1, 2]
    assert "consumer_group_recreated" in [line["event"] for line in log_lines()]


async def test_a_lost_stream_is_recreated(make, js, nats_prefix):
    # In memory: nats-server 2.9 removes a deleted file stream's files after the delete has
    # returned, and at times after the stream was created again (with an event stored).
    recorder = EventRecorder()
    bus = EventBus(make(storage="memory"), service_name="exec")
    bus.subscribe("orders", recorder, name="handle")
    publisher = EventBus(make(storage="memory"), service_name="pub")
    async with bus:
        await publisher.publish("orders", {"n": 1})
        await recorder.wait_for(1)
        await js.delete_stream(nats_prefix)
        await publisher.publish("orders", {"n": 2})  # recreates the stream
        await recorder.wait_for(2, timeout=15)
    assert [p["n"] for p in recorder.payloads] == [1, 2]


async def test_backlog_reports_lag_and_pending(make):
    transport = make()
    subscription = await transport.subscribe("orders", group="g", consumer="c")
    try:
        await transport.publish("orders", [b"a", b"b", b"c", b"d", b"e"])
        backlog = await subscription.backlog()
        assert (backlog.pending, backlog.lag) == (0, 5)
        deliveries = await subscription.fetch(2, 1.0)
        assert [d.data for d in deliveries] == [b"a", b"b"]
        assert [d.delivery_count for d in deliveries] == [1, 1]

        async def prefetched():  # the fetch that emptied the buffer asked for two more
            return await subscription.backlog() == Backlog(pending=4, lag=1)

        await eventually(prefetched, "two more fetched ahead", timeout=15)
        await subscription.ack(deliveries)
        assert [d.data for d in await subscription.fetch(5, 1.0)] == [b"c", b"d"]

        async def acknowledged():
            return (await subscription.backlog()).pending == 3  # c, d, and e fetched ahead

        await eventually(acknowledged, "a and b acknowledged", timeout=15)
    finally:
        await subscription.close()


async def test_close_hands_back_what_it_held(make):
    transport = make(ack_wait=30)
    first = await transport.subscribe("orders", group="g", consumer="c1")
    await transport.publish("orders", [b"a"])
    assert len(await first.fetch(10, 1.0)) == 1
    await first.close()  # long before ack_wait: the message goes back at once
    second = await transport.subscribe("orders", group="g", consumer="c2")
    try:
        started = time.monotonic()
        deliveries = []
        while not deliveries:
            deliveries = await second.fetch(10, 1.0)
        assert time.monotonic() - started < 5
        assert [(d.data, d.delivery_count) for d in deliveries] == [(b"a", 2)]
    finally:
        await second.close()


# -- retries, dead letters and replay on a nats:// URL -----------------------------------------


async def test_event_bus_end_to_end_on_a_nats_url(nats_url, nats_prefix):
    url = f"{nats_url}?prefix={nats_prefix}&ack_wait=2"
    attempts = []
    fixed = False

    async def flaky(payload):
        attempts.append(payload["n"])
        if payload["n"] == 1 and attempts.count(1) < 3:
            raise RuntimeError("not yet")
        if payload["n"] == 2 and not fixed:
            raise ValueError("cannot handle 2")

    bus = EventBus(url, service_name="exec", max_attempts=3, retry_backoff=0.01)
    bus.subscribe("orders", flaky, name="flaky")
    publisher = EventBus(url, service_name="pub")
    async with bus:
        await publisher.publish("orders", {"n": 1})
        bad_id = await publisher.publish("orders", {"n": 2}, trace_id="trace-2")

        async def one_dead_letter():
            return len(await bus.dead_letters("orders")) == 1

        await eventually(one_dead_letter, "the failing event dead-lettered", timeout=15)
        # two failures, then handled: its retries may still be under way (they run beside n=2's)
        await eventually(lambda: attempts.count(1) == 3, "n=1 handled on its third attempt")
        (letter,) = await bus.dead_letters("orders")
        assert (letter.event_id, letter.trace_id, letter.attempts) == (bad_id, "trace-2", 3)
        assert letter.id.isdigit()
        fixed = True
        assert await bus.replay_dead_letter("orders", letter.id) == bad_id

        async def replayed():
            return attempts.count(2) == 4 and await bus.dead_letters("orders") == []

        await eventually(replayed, "the replayed event handled", timeout=15)
        stats = (await bus.stats())["orders -> flaky"]
        assert (stats.handled, stats.dead_lettered, stats.pending) == (2, 1, 0)
    await publisher.stop()


async def test_dead_letters_are_deduplicated_and_read_by_sequence(make, js, nats_prefix):
    transport = make()
    subscription = await transport.subscribe("orders", group="g", consumer="c")
    try:
        await transport.publish("orders", [b"poison"])
        await transport.publish("other", [b"x"])
        (delivery,) = await subscription.fetch(1, 1.0)
        # As after a crash between storing the record and acking the message: the same
        # message is dead-lettered twice, and stored once.
        await transport._state.publish_dead_letter(
            "orders", b'{"n": 1}', f"g:{delivery.receipt.metadata.sequence.stream}:x"
        )
        await transport._state.publish_dead_letter(
            "orders", b'{"n": 1}', f"g:{delivery.receipt.metadata.sequence.stream}:x"
        )
        await subscription.dead_letter(delivery, b'{"n": 2}')
        letters = await transport.read_dead_letters("orders", 10)
        assert [record for _, record in letters] == [b'{"n": 1}', b'{"n": 2}']
        first, second = (letter_id for letter_id, _ in letters)
        assert await transport.read_dead_letters("orders", 10, start=second) == [letters[1]]
        assert await transport.read_dead_letters("other", 10) == []
        assert await transport.delete_dead_letters("other", [first]) == 0  # not its letter
        assert await transport.delete_dead_letters("orders", [first, "999999"]) == 1
        assert await transport.delete_dead_letters("orders", None) == 1
        assert await transport.read_dead_letters("orders", 10) == []
        assert (await subscription.backlog()).pending == 0
        for bad in ("abc", "-1", "0", "1-0", "1.5"):
            with pytest.raises(ValueError, match="not a dead-letter id of the NATS"):
                await transport.read_dead_letters("orders", 1, start=bad)
            with pytest.raises(ValueError, match="not a dead-letter id of the NATS"):
                await transport.delete_dead_letters("orders", [bad])
    finally:
        await subscription.close()


async def test_no_dead_letters_yet(make):
    transport = make()
    assert await transport.read_dead_letters("orders", 10) == []
    assert await transport.delete_dead_letters("orders", None) == 0
    assert await transport.delete_dead_letters("orders", ["1"]) == 0


async def test_a_replay_reaches_only_the_group_that_failed(nats_url, nats_prefix):
    url = f"{nats_url}?prefix={nats_prefix}"
    seen = {"fragile": [], "other": []}

    async def fragile(payload):
        seen["fragile"].append(payload["n"])
        if len(seen["fragile"]) == 1:
            raise ValueError("first time fails")

    async def other(payload):
        seen["other"].append(payload["n"])

    bus = EventBus(url, service_name="svc", max_attempts=1)
    bus.subscribe("orders", fragile, name="fragile")
    bus.subscribe("orders", other, name="other")
    async with bus:
        await bus.publish("orders", {"n": 1})

        async def dead():
            return len(await bus.dead_letters("orders")) == 1

        await eventually(dead, "dead-lettered", timeout=15)
        (letter,) = await bus.dead_letters("orders")
        await bus.replay_dead_letter("orders", letter.id)
        await eventually(lambda: _true(len(seen["fragile"]) == 2), "replayed", timeout=15)
        await asyncio.sleep(0.3)
    assert seen == {"fragile": [1, 1], "other": [1]}  # the replay went to "fragile" only


async def _true(value):
    return value


# -- idempotent subscriptions: the KV bucket ---------------------------------------------------


async def test_handled_records_live_in_a_kv_bucket(make, js, nats_prefix):
    transport = make()
    subscription = await transport.subscribe("orders", group="svc:handle", consumer="c")
    other = await transport.subscribe("orders", group="svc:other", consumer="c")
    try:
        assert isinstance(subscription, HandledRecords)
        assert not await subscription.was_handled("e1")  # no bucket yet
        await subscription.mark_handled(["e1", "odd id/with.dots"], ttl=60)
        assert await subscription.was_handled("e1")
        assert await subscription.was_handled("odd id/with.dots")
        assert not await other.was_handled("e1")  # per group
        await subscription.mark_handled(["short"], ttl=0.5)
        assert await subscription.was_handled("short")
        await asyncio.sleep(0.7)
        assert not await subscription.was_handled("short")  # expired
        await subscription.mark_handled(["long"], ttl=7200)  # the bucket keeps keys longer
        info = await js.stream_info(f"KV_{nats_prefix}_handled")
        assert info.config.max_age == 7200
    finally:
        await subscription.close()
        await other.close()


async def test_idempotent_subscription_skips_an_event_it_handled(make):
    transport = make()
    handled = []

    async def handle(payload):
        handled.append(payload["n"])

    (data,), (event_id,) = encode_events("pub", "orders", ({"n": 1},), None, None)
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("orders", handle, name="handle", idempotent=True)
    async with bus:
        await transport.publish("orders", [data])
        await eventually(lambda: _true(handled == [1]), "handled", timeout=15)
        await transport.publish("orders", [data])  # the same event again, as a redelivery

        async def skipped():
            return (await bus.stats())["orders -> handle"].skipped_duplicates == 1

        await eventually(skipped, "the second copy skipped", timeout=15)
        assert await bus._consumers[0].subscription.was_handled(event_id)
    assert handled == [1]


# -- ping and outages --------------------------------------------------------------------------


async def test_ping(make):
    await make().ping()
    with pytest.raises(TransportError, match=r"could not connect to NATS at nats://127\.0\.0\.1:1"):
        await NatsJetStreamTransport("nats://127.0.0.1:1").ping()


async def test_publish_to_an_unreachable_server_raises_transport_error():
    transport = NatsJetStreamTransport("nats://127.0.0.1:1")
    with pytest.raises(TransportError):
        await transport.publish("orders", [b"x"])
    await transport.close()
