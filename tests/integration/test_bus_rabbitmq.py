"""The RabbitMQ transport beyond the contract: URLs, secrets, the bus end to end, edges."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import aio_pika
import pytest

from quantum_core import EventBus, TransportError, transport_from_url
from quantum_core.testing import EventRecorder, eventually
from quantum_core.transports.rabbitmq import RabbitMQTransport

SECRET = "s3cr3t-Pa55"  # noqa: S105 - a made-up password the tests must never see shown


# -- URLs -------------------------------------------------------------------------------


def test_url_options_reach_the_transport():
    transport = transport_from_url(
        "amqp://guest:guest@127.0.0.1:5672/?prefix=trading&history_max_bytes=0"
        "&dead_letter_max=10&heartbeat=30&publish_timeout=2.5"
    )
    assert isinstance(transport, RabbitMQTransport)
    assert transport.prefix == "trading"
    assert not transport.keeps_history
    assert transport._state.settings.dead_letter_max == 10
    assert transport.publish_timeout == 2.5
    assert RabbitMQTransport("amqp://localhost/").publish_timeout == 5.0
    assert transport._state.url == "amqp://guest:guest@127.0.0.1:5672/?heartbeat=30"


def test_keyword_arguments_win_over_url_options():
    transport = RabbitMQTransport("amqp://localhost/?prefix=from-url", prefix="from-kwarg")
    assert transport.prefix == "from-kwarg"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "amqp://localhost/?prefx=x",
            r"unknown RabbitMQ URL option 'prefx'; known options: .*prefix",
        ),
        (
            "amqp://localhost/?history_max_bytes=lots",
            r"history_max_bytes='lots' is not valid: expected a whole number >= 0",
        ),
        ("amqp://localhost/?history_max_age=-1", r"history_max_age='-1' is not valid: expected a"),
        (
            "amqp://localhost/?dead_letter_max=0",
            r"dead_letter_max='0' is not valid: expected a whole number >= 1",
        ),
        ("amqp://localhost/?prefix=amq.x", r"not starting with 'amq\.'"),
        ("amqp://localhost/?prefix=has space", r"prefix must be"),
        ("amqp:///vhost", r"names no host"),
        (f"amqp://u:{SECRET}@localhost:port/", r"has an invalid port"),
    ],
)
def test_bad_urls_say_what_was_wrong(url, message):
    with pytest.raises(ValueError, match=message) as caught:
        transport_from_url(url)
    assert SECRET not in str(caught.value)


def test_not_a_transport_argument():
    with pytest.raises(TypeError, match="needs an amqp:// URL or an aio-pika connection"):
        RabbitMQTransport(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("topic", ["", "orders.#", "orders.*", "x" * 256])
async def test_topics_that_would_be_wildcards_are_refused(topic):
    transport = RabbitMQTransport("amqp://localhost/")
    with pytest.raises(ValueError, match="without '\\*' or '#'"):
        await transport.publish(topic, [b"x"])


# -- secrets ------------------------------------------------------------------------------


def test_repr_hides_the_password():
    transport = RabbitMQTransport(f"amqp://trader:{SECRET}@broker.internal:5672/prod")
    shown = repr(transport)
    assert SECRET not in shown
    assert "trader:***@broker.internal:5672/prod" in shown


async def test_connection_errors_hide_the_password(amqp_url, log_lines):
    # A port nothing listens on: the error names the broker, never the password.
    bus = EventBus(f"amqp://guest:{SECRET}@127.0.0.1:1/?prefix=qc-unused", service_name="svc")
    with pytest.raises(TransportError) as caught:
        await bus.publish("orders", {"n": 1})
    assert SECRET not in str(caught.value)
    assert "guest:***@127.0.0.1:1" in str(caught.value)
    assert SECRET not in repr(bus)
    await bus.stop()
    assert all(SECRET not in str(line) for line in log_lines())


async def test_wrong_password_is_a_transport_error_without_it(amqp_url):
    transport = RabbitMQTransport(f"amqp://guest:{SECRET}@127.0.0.1:5672/")
    with pytest.raises(TransportError) as caught:
        await transport.ping()
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.__cause__) or caught.value.__cause__ is None
    await transport.close()


# -- the bus end to end on an amqp:// URL ---------------------------------------------------


async def test_bus_on_an_amqp_url_retries_dead_letters_and_replays(
    amqp_url, rabbitmq_prefix, rabbitmq_declared
):
    url = f"{amqp_url}?prefix={rabbitmq_prefix}"
    fixed = False
    handled: list[tuple[int, int]] = []

    async def handle(payload: dict[str, Any]) -> None:
        from quantum_core import current_event

        info = current_event()
        attempt = info.attempt if info else 0
        if payload["n"] == 1 and not fixed:
            raise RuntimeError(f"not yet (attempt {attempt})")
        handled.append((payload["n"], attempt))

    consumer = EventBus(url, service_name="execution", max_attempts=3, retry_backoff=0.01)
    consumer.subscribe("orders", handle, name="handle")
    publisher = EventBus(url, service_name="risk")
    try:
        await consumer.start()
        rabbitmq_declared.update(consumer.transport._state.declared)  # type: ignore[attr-defined]
        bad = await publisher.publish("orders", {"n": 1})
        await publisher.publish_many("orders", [{"n": 2}, {"n": 3}])

        async def one_dead_two_handled():
            return len(handled) == 2 and len(await consumer.dead_letters("orders")) == 1

        await eventually(one_dead_two_handled, "the bad event dead-lettered, the others handled")
        (letter,) = await consumer.dead_letters("orders")
        assert (letter.event_id, letter.attempts, letter.error_type) == (bad, 3, "RuntimeError")
        assert sorted(handled) == [(2, 1), (3, 1)]
        stats = (await consumer.stats())["orders -> handle"]
        assert (stats.handled, stats.failed, stats.retried, stats.dead_lettered) == (2, 3, 2, 1)

        fixed = True
        assert await consumer.replay_dead_letter("orders", letter.id) == bad
        await eventually(lambda: len(handled) == 3, "the replayed event handled")
        assert handled[-1] == (1, 1)
        assert await consumer.dead_letters("orders") == []
        backlog = (await consumer.backlog())["orders -> handle"]
        assert (backlog.pending, backlog.lag) == (0, 0)
    finally:
        await consumer.stop()
        await publisher.stop()
        rabbitmq_declared.update(publisher.transport._state.declared)  # type: ignore[attr-defined]
        rabbitmq_declared.update(consumer.transport._state.declared)  # type: ignore[attr-defined]


async def test_ping_and_a_given_connection_stays_open(amqp_url, rabbitmq_prefix):
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        transport = RabbitMQTransport(connection, prefix=rabbitmq_prefix)
        await transport.ping()
        await transport.close()
        assert not connection.is_closed
    finally:
        await connection.close()


# -- edges --------------------------------------------------------------------------------


async def test_from_beginning_without_history_is_refused(rabbitmq_transports):
    transport = rabbitmq_transports(history_max_bytes=0)
    with pytest.raises(ValueError, match=r"from_beginning=True\) needs the topic's history"):
        await transport.subscribe("orders", group="svc:h", consumer="c", from_beginning=True)
    await transport.close()


async def test_idempotent_subscriptions_are_refused_clearly(rabbitmq_transports):
    bus = EventBus(rabbitmq_transports(), service_name="svc")
    bus.subscribe("orders", EventRecorder(), name="h", idempotent=True)
    with pytest.raises(NotImplementedError, match="keeps no handled-records"):
        await bus.start()
    await bus.stop()
    await bus.transport.close()


async def test_dead_letter_ids_are_checked(rabbitmq_transports):
    transport = rabbitmq_transports()
    with pytest.raises(ValueError, match="not a RabbitMQ dead-letter id"):
        await transport.read_dead_letters("orders", 10, start="1700000000000-0")
    with pytest.raises(ValueError, match="not a RabbitMQ dead-letter id"):
        await transport.delete_dead_letters("orders", ["nope"])
    assert await transport.read_dead_letters("orders", 10) == []
    assert await transport.delete_dead_letters("orders", None) == 0
    await transport.close()


async def test_a_record_stored_twice_for_one_message_shows_once(rabbitmq_transports):
    # A crash between the dead letter's confirm and the ack stores it twice, same origin.
    transport = rabbitmq_transports()
    for record in (b"first", b"again", b"other"):
        origin = "svc:h|m-1" if record != b"other" else "svc:h|m-2"
        await transport._state.store_dead_letter("orders", record, origin)
    letters = await transport.read_dead_letters("orders", 10)
    assert [record for _, record in letters] == [b"first", b"other"]
    assert await transport.read_dead_letters("orders", 10, start=letters[1][0]) == [letters[1]]
    assert await transport.delete_dead_letters("orders", [letters[0][0]]) == 1
    assert [record for _, record in await transport.read_dead_letters("orders", 10)] == [b"other"]
    assert await transport.delete_dead_letters("orders", None) == 1
    await transport.close()


async def test_handler_names_rabbitmq_cannot_hold_are_escaped(rabbitmq_transports):
    recorder = EventRecorder()
    bus = EventBus(rabbitmq_transports(), service_name="svc")
    bus.subscribe("orders.eu", recorder, name="<lambda> #1+ü")
    publisher = EventBus(rabbitmq_transports(), service_name="pub")
    try:
        await bus.start()
        await publisher.publish("orders.eu", {"n": 1})
        await recorder.wait_for(1)
    finally:
        await bus.stop()
        await publisher.stop()
        await bus.transport.close()
        await publisher.transport.close()


async def test_queue_names_over_255_bytes_are_shortened_and_served(rabbitmq_transports):
    topic = "orders." + "x" * 193  # the longest event type the bus takes
    recorder = EventRecorder()
    bus = EventBus(rabbitmq_transports(), service_name="svc")
    bus.subscribe(topic, recorder, name="h" * 60, from_beginning=True)  # its queue: 290 bytes
    publisher = EventBus(rabbitmq_transports(), service_name="pub")
    try:
        await publisher.publish(topic, {"n": 1})
        await bus.start()
        await publisher.publish(topic, {"n": 2})
        await recorder.wait_for(2)
    finally:
        await bus.stop()
        await publisher.stop()
        await bus.transport.close()
        await publisher.transport.close()


def test_missing_extra_names_it():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["aio_pika"] = None
        from quantum_core import transport_from_url
        try:
            transport_from_url("amqp://localhost/")
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'quantum-core-sdk[rabbitmq]'" in out.stdout


async def test_a_deleted_group_queue_is_recreated_from_the_history(
    amqp_url, rabbitmq_transports, rabbitmq_prefix, rabbitmq_declared
):
    from quantum_core.transports.rabbitmq.names import group_queue

    recorder = EventRecorder()
    # aio-pika acts on a consumer the broker cancelled at once when its connection's
    # reconnect loop is idle, which is after reconnect_interval (5 s by default): the
    # state of any consumer running for a while, reached here in 0.1 s.
    consuming = RabbitMQTransport(f"{amqp_url}?reconnect_interval=0.1", prefix=rabbitmq_prefix)
    consuming._state.declared = rabbitmq_declared
    bus = EventBus(consuming, service_name="svc")
    bus.subscribe("orders", recorder, name="h")
    publisher = EventBus(rabbitmq_transports(), service_name="pub")
    try:
        await bus.start()
        await publisher.publish("orders", {"n": 1})
        await recorder.wait_for(1)
        await asyncio.sleep(0.2)
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(group_queue(rabbitmq_prefix, "orders", "svc:h"))
        await publisher.publish("orders", {"n": 2})  # routed nowhere but the history
        await recorder.wait_for(3, timeout=10)  # the history again: 1 (a repeat), then 2
        assert [p["n"] for p in recorder.payloads] == [1, 1, 2]
        await publisher.publish("orders", {"n": 3})
        await recorder.wait_for(4)
    finally:
        await bus.stop()
        await publisher.stop()
        await bus.transport.close()
        await publisher.transport.close()


# -- acknowledgements ---------------------------------------------------------------------


async def _fetch_all(subscription, count: int) -> list:
    got: list = []
    while len(got) < count:
        got += await subscription.fetch(count - len(got), 2.0)
    return got


@pytest.mark.parametrize(
    ("acked", "back"),
    [
        ([0, 1, 2], [3, 4]),  # every message up to the highest: one multiple ack
        ([1, 2], [0, 3, 4]),  # an older one still being handled: it must not be acked
        ([0, 2], [1, 3, 4]),  # a gap in the middle
        ([4], [0, 1, 2, 3]),
    ],
)
async def test_an_ack_never_covers_a_message_still_being_handled(rabbitmq_transports, acked, back):
    transport = rabbitmq_transports()
    subscription = await transport.subscribe("t.acks", group="g", consumer="c1")
    await transport.publish("t.acks", [b"%d" % n for n in range(5)])
    deliveries = await _fetch_all(subscription, 5)
    assert [d.data for d in deliveries] == [b"%d" % n for n in range(5)]
    await subscription.ack([deliveries[n] for n in acked])
    await subscription.close()  # what is not acknowledged goes back to the queue
    again = await transport.subscribe("t.acks", group="g", consumer="c2")
    returned = await _fetch_all(again, len(back))
    assert sorted(int(d.data) for d in returned) == back
    assert await again.fetch(10, 0.5) == []  # and nothing acked came back
    await again.close()


async def _close_by_channel_error(channel):
    """Make the broker close this channel (a passive declare of an exchange that is not)."""
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await channel.declare_exchange(f"missing-{uuid.uuid4().hex}", passive=True)


async def _receive(subscription, count):
    received: list[bytes] = []
    async with asyncio.timeout(10):
        while len(received) < count:
            deliveries = await subscription.fetch(100, 0.5)
            received += [delivery.data for delivery in deliveries]
            await subscription.ack(deliveries)
    return received


async def _receive_each(subscription, sent: list[bytes]) -> set[bytes]:
    """What arrives until each sent message did (or 10 s): some may come twice."""
    received: set[bytes] = set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while not received.issuperset(sent):
                deliveries = await subscription.fetch(100, 0.5)
                received.update(delivery.data for delivery in deliveries)
                await subscription.ack(deliveries)
    return received


@pytest.mark.parametrize("count", [1, 50])
async def test_publishing_goes_on_after_the_broker_closes_the_channel(rabbitmq_transports, count):
    # RabbitMQ closes a channel on any channel error (and 3.10 crashes one that publishes to
    # a stream declared an instant before): the next publish must not fail for it.
    transport = rabbitmq_transports(history_max_bytes=0)
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    await transport.publish("orders", [b"before"])
    await _close_by_channel_error((await transport._state.publisher())[0])
    sent = [f"after-{n}".encode() for n in range(count)]
    await transport.publish("orders", sent)
    assert await _receive(subscription, 1 + count) == [b"before", *sent]


async def test_a_batch_the_channel_closed_under_goes_again(rabbitmq_transports):
    transport = rabbitmq_transports(history_max_bytes=0)
    # Before the group, so routed nowhere: the topic's catalog note goes before the batch.
    await transport.publish("orders", [b"noted"])
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    channel, _ = await transport._state.publisher()
    sent = [f"m-{n}".encode() for n in range(500)]
    await asyncio.gather(transport.publish("orders", sent), _close_by_channel_error(channel))
    assert channel.is_closed
    assert await _receive_each(subscription, sent) == set(sent)


async def test_a_first_publish_the_channel_closed_under_while_noting_goes_again(
    rabbitmq_transports,
):
    # The first publish to a topic notes it in the catalog first (catalog.py), on the same
    # channel: closed under that note, the publish goes on a new channel all the same.
    transport = rabbitmq_transports(history_max_bytes=0)
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    channel, _ = await transport._state.publisher()
    sent = [b"first"]
    await asyncio.gather(transport.publish("orders", sent), _close_by_channel_error(channel))
    assert await _receive_each(subscription, sent) == set(sent)
    assert [t.event_type for t in await transport.list_topics()] == ["orders"]


async def test_renewing_a_full_window_returns_no_message(rabbitmq_transports):
    # Every other message is held, as the bus holds events waiting for a retry, so the
    # consumer's window fills and is renewed again and again while the rest are acked. An
    # ack the broker took during a renewal would make it return a message, counted as a
    # second delivery (an attempt no handler saw).
    transport = rabbitmq_transports(history_max_bytes=0)
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    sent = 2000
    deliveries: dict[int, list[int]] = {}
    held: list[Any] = []
    to_ack: asyncio.Queue[Any] = asyncio.Queue()

    async def ack_as_they_come() -> None:
        while True:
            batch = [await to_ack.get()]
            while not to_ack.empty():
                batch.append(to_ack.get_nowait())
            await subscription.ack(batch)

    acking = asyncio.create_task(ack_as_they_come())
    try:
        await transport.publish("orders", [b"%d" % n for n in range(sent)])
        async with asyncio.timeout(60):
            while len(deliveries) < sent:
                for delivery in await subscription.fetch(8, 0.5):
                    n = int(delivery.data)
                    deliveries.setdefault(n, []).append(delivery.delivery_count)
                    if n % 2:
                        to_ack.put_nowait(delivery)
                    else:
                        held.append(delivery)
        await subscription.ack(held)
        assert {n: counts for n, counts in deliveries.items() if counts != [1]} == {}
        assert len(held) == sent // 2
    finally:
        acking.cancel()


async def _close_connection_by_broker(name: str) -> None:
    """Have the broker close the client connection of this name (as after a channel crash)."""
    ctl = ("rabbitmqctl", "--quiet")
    listing = await asyncio.to_thread(
        subprocess.run,
        [*ctl, "list_connections", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
    )
    pids = [line.split("\t")[0] for line in listing.stdout.splitlines() if f'"{name}"' in line]
    assert pids, f"no connection named {name!r}"
    for pid in pids:
        await asyncio.to_thread(
            subprocess.run, [*ctl, "close_connection", pid, "test"], capture_output=True, check=True
        )


async def _heartbeat_seen_by_broker(name: str) -> int:
    """The heartbeat (seconds) the broker agreed with the client connection of this name."""
    listing = await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "--quiet", "list_connections", "--no-table-headers", "timeout",
         "client_properties"],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    [timeout] = [line.split("\t")[0] for line in listing.stdout.splitlines() if f'"{name}"' in line]
    return int(timeout)


@pytest.mark.parametrize(("query", "heartbeat"), [("", 5), ("&heartbeat=7", 7)])
async def test_a_silent_connection_is_noticed_within_seconds(
    amqp_url, rabbitmq_prefix, rabbitmq_declared, query, heartbeat
):
    # aiormq's default is 60 s, given up after (60 + 1) x 3 s: three minutes of a consumer
    # behind a frozen network path that hears nothing (tests/faults/*network_freeze*).
    transport = RabbitMQTransport(f"{amqp_url}?prefix={rabbitmq_prefix}{query}")
    transport._state.declared = rabbitmq_declared
    try:
        await transport.publish("orders", [b"opens the publishing connection"])
        assert (
            await _heartbeat_seen_by_broker(transport._state.connection_name("publish"))
            == heartbeat
        )
    finally:
        await transport.close()


async def test_publishing_goes_on_after_the_broker_closes_the_connection(rabbitmq_transports):
    # RabbitMQ 3.10 closes the whole connection (INTERNAL_ERROR) when some channel crashes:
    # the next publish waits for aio-pika's reconnect instead of failing.
    transport = rabbitmq_transports(history_max_bytes=0)
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    await transport.publish("orders", [b"before"])
    await _close_connection_by_broker(transport._state.connection_name("publish"))
    sent = [f"after-{n}".encode() for n in range(50)]
    await transport.publish("orders", sent)
    assert await _receive(subscription, 1 + len(sent)) == [b"before", *sent]


async def test_a_stream_of_batches_outlives_the_broker_closing_the_connection(
    rabbitmq_transports,
):
    transport = rabbitmq_transports(history_max_bytes=0)
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    await transport.publish("orders", [b"first"])  # the publishing connection is open
    closed = asyncio.Event()
    sent: list[bytes] = [b"first"]

    async def publish_until_after_the_close() -> None:
        batch = 0
        while not closed.is_set() or batch < 3:
            messages = [f"b{batch}-{n}".encode() for n in range(100)]
            await transport.publish("orders", messages)  # none may fail, none may be lost
            sent.extend(messages)
            batch = batch + 1 if closed.is_set() else 0

    async def close() -> None:
        await _close_connection_by_broker(transport._state.connection_name("publish"))
        closed.set()

    await asyncio.gather(publish_until_after_the_close(), close())
    assert await _receive_each(subscription, sent) == set(sent)


@pytest.mark.parametrize("closed_by", ["channel error", "broker closing the connection"])
async def test_a_consumer_goes_on_after_losing_its_channel(rabbitmq_transports, closed_by):
    transport = rabbitmq_transports(history_max_bytes=0)
    subscription = await transport.subscribe("orders", group="svc:h", consumer="c")
    await transport.publish("orders", [b"before"])
    assert await _receive(subscription, 1) == [b"before"]
    if closed_by == "channel error":
        await _close_by_channel_error(subscription._channel)
    else:
        await _close_connection_by_broker(transport._state.connection_name("consume"))
    await transport.publish("orders", [b"after"])
    received: list[bytes] = []
    async with asyncio.timeout(15):
        while not received:
            try:
                deliveries = await subscription.fetch(10, 0.5)
            except TransportError:  # "reconnecting": the bus backs off and fetches again
                await asyncio.sleep(0.1)
                continue
            received += [delivery.data for delivery in deliveries]
            await subscription.ack(deliveries)
    assert received == [b"after"]
