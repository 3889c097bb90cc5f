"""RabbitMQ: list_topics (``quantum-core topics``) from the prefix's catalog stream.

AMQP cannot list queues, so every transport notes in ``{prefix}.catalog`` the topics and
groups it creates; a listing reads that stream and asks the broker about each queue.
"""

import json

import aio_pika
import pytest

from quantum_core import TransportError
from quantum_core.bus.abilities import GroupSummary, TopicSummary
from quantum_core.testing import eventually
from quantum_core.testing.brokers import delete_rabbitmq_names, new_namespace
from quantum_core.transports.rabbitmq import RabbitMQTransport
from quantum_core.transports.rabbitmq import catalog as rabbitmq_catalog
from quantum_core.transports.rabbitmq import state as rabbitmq_state
from quantum_core.transports.rabbitmq.names import (
    catalog_stream,
    dead_letter_queue,
    group_queue,
    history_stream,
)
from quantum_core.transports.rabbitmq.streams import MARKER, read_stream

SECRET = "s3cr3t-Pa55"  # noqa: S105 - a made-up password the tests must never see shown


async def _listed_when(transport, condition, what: str) -> list[TopicSummary]:
    """The listing once ``condition(listing)`` holds (queue counts settle a moment late)."""
    seen: list[TopicSummary] = []

    async def holds() -> bool:
        seen[:] = await transport.list_topics()
        return bool(condition(seen))

    try:
        await eventually(holds, what, timeout=10.0, interval=0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; listed: {seen}") from None
    return seen


async def _exists(url: str, queue: str) -> bool:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        await channel.close()
        return True
    finally:
        await connection.close()


async def _delete_queue(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def test_a_prefix_with_no_catalog_lists_nothing_and_creates_nothing(
    rabbitmq_transports, rabbitmq_prefix, amqp_url
):
    assert await rabbitmq_transports().list_topics() == []
    assert not await _exists(amqp_url, catalog_stream(rabbitmq_prefix))


async def test_a_new_transport_lists_what_earlier_ones_created(rabbitmq_transports):
    first = rabbitmq_transports()
    subscription = await first.subscribe("orders.placed", group="billing:charge", consumer="c1")
    await subscription.close()
    await first.publish("orders.placed", [b"1", b"2"])
    await first.publish("orders.shipped", [b"3"])
    second = rabbitmq_transports(history_max_bytes=0)  # notes without a history stream
    await second.restore_dead_letter("orders.failed", b"record")
    await first.close()
    await second.close()

    listed = await _listed_when(
        rabbitmq_transports(),
        lambda seen: any(g.lag == 2 for t in seen for g in t.groups),
        "the group's two events counted",
    )

    assert listed == [
        TopicSummary("orders.failed", length=None, dead_letters=1),
        TopicSummary(
            "orders.placed",
            length=None,
            dead_letters=0,
            groups=(GroupSummary("billing:charge", pending=None, lag=2),),
        ),
        TopicSummary("orders.shipped", length=None, dead_letters=0),
    ]


async def test_a_group_held_behind_shows_its_lag_and_one_caught_up_none(rabbitmq_transports):
    transport = rabbitmq_transports()
    behind = await transport.subscribe("prices", group="slow:h", consumer="c1")
    await behind.close()
    current = await transport.subscribe("prices", group="fast:h", consumer="c1")
    await transport.publish("prices", [b"1", b"2", b"3"])
    deliveries: list = []

    async def all_fetched() -> bool:
        deliveries.extend(await current.fetch(10, 0.2))
        return len(deliveries) == 3

    await eventually(all_fetched, "the fast group received all three")
    await current.ack(deliveries)

    listed = await _listed_when(
        transport,
        lambda seen: [(g.name, g.lag) for g in seen[0].groups] == [("fast:h", 0), ("slow:h", 3)],
        "the slow group three behind, the fast one none",
    )
    assert [topic.event_type for topic in listed] == ["prices"]


async def test_another_prefix_is_never_listed(rabbitmq_transports, rabbitmq_prefix, amqp_url):
    ours = rabbitmq_transports()
    await ours.publish("shared.name", [b"1"])
    await ours.publish("only.ours", [b"1"])
    other_prefix = f"{rabbitmq_prefix}-other"  # a prefix that starts like ours, too
    other = RabbitMQTransport(amqp_url, prefix=other_prefix)
    try:
        await other.subscribe("shared.name", group="theirs:h", consumer="c1")
        await other.publish("only.theirs", [b"1"])

        assert [t.event_type for t in await ours.list_topics()] == ["only.ours", "shared.name"]
        listed = await other.list_topics()
        assert [t.event_type for t in listed] == ["only.theirs", "shared.name"]
        assert [g.name for g in listed[1].groups] == ["theirs:h"]
    finally:
        await other.close()
        await delete_rabbitmq_names(amqp_url, other_prefix, other._state.declared)


async def test_names_that_queue_names_escape_or_shorten_are_listed_as_given(
    rabbitmq_transports,
):
    transport = rabbitmq_transports()
    long_topic = "t." + "x" * 250
    group = "svc:<locals>.handle+ü"  # its queue's name: escaped, then shortened with a hash
    await transport.subscribe(long_topic, group=group, consumer="c1")
    await transport.publish("ünïcode <1>", [b"1"])

    listed = await transport.list_topics()

    assert [t.event_type for t in listed] == [long_topic, "ünïcode <1>"]
    assert [g.name for g in listed[0].groups] == [group]


async def test_a_group_whose_queue_was_deleted_is_left_out(
    rabbitmq_transports, rabbitmq_prefix, amqp_url
):
    transport = rabbitmq_transports()
    subscription = await transport.subscribe("jobs", group="gone:h", consumer="c1")
    await subscription.close()
    await transport.subscribe("jobs", group="kept:h", consumer="c1")
    await _delete_queue(amqp_url, group_queue(rabbitmq_prefix, "jobs", "gone:h"))

    listed = await transport.list_topics()

    assert [(t.event_type, [g.name for g in t.groups]) for t in listed] == [("jobs", ["kept:h"])]


async def test_a_catalog_deleted_under_a_running_transport_is_declared_again(
    rabbitmq_transports, rabbitmq_prefix, amqp_url
):
    transport = rabbitmq_transports()
    await transport.publish("before", [b"1"])
    await _delete_queue(amqp_url, catalog_stream(rabbitmq_prefix))

    await transport.subscribe("after", group="svc:h", consumer="c1")

    listed = await rabbitmq_transports().list_topics()
    assert [(t.event_type, [g.name for g in t.groups]) for t in listed] == [("after", ["svc:h"])]


async def test_the_test_cleanup_finds_every_queue_in_the_catalog(amqp_url):
    # A transport built from a URL (as the CLI or a bus given a URL builds one) notes its
    # names nowhere but in the catalog: the cleanup finds them there.
    prefix = new_namespace()
    transport = RabbitMQTransport(amqp_url, prefix=prefix)
    try:
        await transport.subscribe("orders", group="svc:h", consumer="c1")
        await transport.publish("orders", [b"1"])
        await transport.restore_dead_letter("orders", b"record")
        names = {*transport._state.declared}
        assert names == {
            catalog_stream(prefix),
            group_queue(prefix, "orders", "svc:h"),
            history_stream(prefix, "orders"),
            dead_letter_queue(prefix, "orders"),
        }
    finally:
        await transport.close()
        await delete_rabbitmq_names(amqp_url, prefix, set())
    assert [name for name in sorted(names) if await _exists(amqp_url, name)] == []


async def test_an_unreachable_broker_fails_clearly_in_time_without_the_password():
    transport = RabbitMQTransport(f"amqp://u:{SECRET}@127.0.0.1:1/", publish_timeout=1.0)
    with pytest.raises(TransportError, match="could not connect") as caught:
        await transport.list_topics()
    assert SECRET not in str(caught.value)
    await transport.close()


async def test_queues_that_are_not_cost_no_channel_each(
    rabbitmq_transports, rabbitmq_prefix, amqp_url
):
    # A passive declare of a missing queue closes its channel; the listing must not leave
    # one behind per queue deleted (RabbitMQ allows 2047 channels per connection).
    publisher = rabbitmq_transports(history_max_bytes=0)
    for n in range(30):
        await publisher.restore_dead_letter(f"quiet.{n}", b"record")
        await _delete_queue(amqp_url, dead_letter_queue(rabbitmq_prefix, f"quiet.{n}"))
    lister = rabbitmq_transports()

    assert len(await lister.list_topics()) == 30
    assert len(await lister.list_topics()) == 30

    connection = await lister._state.connection("consume")
    assert connection.transport is not None
    assert len(connection.transport.connection.channels) <= 2


async def _catalog_records(url: str, stream: str) -> list[dict]:
    """Every record the catalog holds now (markers left out)."""
    records: list[dict] = []

    async def take(batch) -> None:
        records.extend(json.loads(message.body) for message in batch)

    connection = await aio_pika.connect(url)
    try:
        await read_stream(await connection.channel(publisher_confirms=True), stream, take)
    finally:
        await connection.close()
    return records


async def _markers(url: str, stream: str, count: int) -> None:
    """Append ``count`` markers, as that many listings elsewhere would."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for n in range(count):
            message = aio_pika.Message(b"", headers={MARKER: f"elsewhere-{n}"})
            await channel.default_exchange.publish(message, routing_key=stream)
    finally:
        await connection.close()


async def test_what_is_listed_now_and_then_outlives_the_catalogs_retention(
    rabbitmq_transports, rabbitmq_prefix, amqp_url, monkeypatch
):
    tiny = {"x-queue-type": "stream", "x-max-length-bytes": 16384}
    tiny["x-stream-max-segment-size-bytes"] = 1024  # room for some 40 records
    monkeypatch.setattr(rabbitmq_state, "catalog_arguments", lambda: tiny)
    monkeypatch.setattr(rabbitmq_catalog, "SNAPSHOT_AFTER", 5)
    stream = catalog_stream(rabbitmq_prefix)
    old = rabbitmq_transports()
    subscription = await old.subscribe("old.topic", group="svc:h", consumer="c1")
    await subscription.close()
    await old.close()
    lister = rabbitmq_transports()

    for _ in range(20):  # 200 records by other listings: the catalog rolls over many times
        await _markers(amqp_url, stream, 10)
        listed = await lister.list_topics()
        assert [(t.event_type, [g.name for g in t.groups]) for t in listed] == [
            ("old.topic", ["svc:h"])
        ]

    records = await _catalog_records(amqp_url, stream)
    assert "topic" not in records[0]  # the note itself is long gone, its snapshot is not
    assert records[-1] == {"snapshot": {"old.topic": ["svc:h"]}, "dead": []}
