"""PostgreSQL unreachable for a while: the relay retries with backoff, logs once, catches up.

The relay reaches the shared server through a TCP proxy the test controls
(``FreezableProxy.cut()``: every connection closed, new ones refused, as when the server
is down), so the server itself never stops for the other tests.
"""

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from freezable_proxy import FreezableProxy
from outbox_helpers import installed_outbox, postgres_dsn
from quantum_core import EventBus, Outbox, current_event
from quantum_core.testing import eventually


@pytest.fixture
async def dsn():
    return await postgres_dsn()


@pytest.fixture
async def outbox(dsn):
    async with installed_outbox(dsn) as outbox:
        yield outbox


@pytest.fixture
def proxy():
    with FreezableProxy(5432) as proxy:
        yield proxy


def through(dsn: str, proxy: FreezableProxy) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{netloc}@127.0.0.1:{proxy.port}"))


async def write(dsn, outbox, *numbers):
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await outbox.publish_many(
                connection, "trade.execution.completed", [{"n": n} for n in numbers]
            )
    finally:
        await connection.close()


def marked(outbox, count):
    """The relay stored its cursor past ``count`` events: an outage now re-sends none.

    A handler runs as soon as the relay has published, a moment before the relay moves its
    cursor; an outage in that moment re-sends the batch (at least once, by design).
    """

    async def condition():
        return (await outbox.status()).sent_total == count

    return condition


async def test_the_relay_retries_while_postgres_is_unreachable_and_catches_up(
    dsn, outbox, proxy, log_lines
):
    seen = []

    async def handle(payload):
        seen.append((payload["n"], current_event().id))

    bus = EventBus("memory://", service_name="fills")
    bus.subscribe("trade.execution.completed", handle)
    relayed = Outbox(through(dsn, proxy), outbox.table)
    async with bus, relayed.relay(bus, retry_backoff=0.02, retry_backoff_max=0.1) as relay:
        await write(dsn, outbox, 1)
        await eventually(lambda: len(seen) == 1, "delivered before the outage")
        await eventually(marked(outbox, 1), "the cursor stored before the outage")
        proxy.cut()
        await write(dsn, outbox, 2, 3)  # committed while the relay cannot read them
        await eventually(lambda: proxy.refused >= 5, "the relay keeps trying")
        assert not relay.is_active
        assert len(seen) == 1
        proxy.restore()
        # Rows are read below the server-wide transaction horizon: another test's open
        # transaction (xdist runs other files beside this one) may hold them back a while.
        await eventually(lambda: len(seen) == 3, "caught up after the outage", timeout=30)
    assert [n for n, _ in seen] == [1, 2, 3]
    failed = log_lines.named("outbox_relay_failed")
    assert len(failed) == 1, failed  # one warning per outage, not one per attempt
    assert failed[0]["level"] == "warning"
    assert failed[0]["table"] == outbox.table
    assert len(log_lines.named("outbox_relay_still_failing")) >= 4  # the tries: debug lines
    (recovered,) = log_lines.named("outbox_relay_recovered")
    assert recovered["failures"] >= 5


async def test_publish_in_a_transaction_that_lost_postgres_fails_as_its_own_queries_do(
    dsn, outbox, proxy
):
    ours = await asyncpg.connect(through(dsn, proxy))
    theirs = await asyncpg.connect(through(dsn, proxy))
    try:
        for connection in (ours, theirs):
            await connection.transaction().start()
        proxy.cut()
        await eventually(lambda: ours.is_closed() and theirs.is_closed(), "both see the cut")
        with pytest.raises(asyncpg.InterfaceError) as own_query:
            await theirs.execute("SELECT 1")
        with pytest.raises(asyncpg.InterfaceError) as publish:  # not "no transaction open"
            await outbox.publish(ours, "trade.execution.completed", {"n": 1})
    finally:
        ours.terminate()
        theirs.terminate()
    assert type(publish.value) is type(own_query.value)
    assert (await outbox.status()).backlog == 0


async def test_a_frozen_network_is_an_outage_and_the_relay_ends_its_own_stale_session(
    dsn, outbox, proxy, log_lines
):
    seen = []

    async def handle(payload):
        seen.append(payload["n"])

    bus = EventBus("memory://", service_name="fills")
    bus.subscribe("trade.execution.completed", handle)
    relayed = Outbox(through(dsn, proxy), outbox.table)
    options = {"query_timeout": 0.5, "poll_interval": 0.1, "lock_interval": 0.1}
    async with bus, relayed.relay(bus, retry_backoff=0.02, **options) as relay:
        await write(dsn, outbox, 1)
        await eventually(lambda: seen == [1], "delivered before the freeze")
        await eventually(marked(outbox, 1), "the cursor stored before the freeze")
        proxy.freeze()  # packets dropped both ways; the server still sees the session alive
        await write(dsn, outbox, 2)
        # the frozen session still holds the lock: the relay ends it from a new connection
        await eventually(lambda: seen == [1, 2], "delivered after the freeze", timeout=30)
        assert relay.is_active
    assert len(log_lines.named("outbox_relay_failed")) == 1
    assert log_lines.named("outbox_relay_ended_stale_session")


async def test_a_network_lost_between_publish_and_cursor_re_sends_the_batch_once_back(
    dsn, outbox, proxy, log_lines
):
    """At least once: what was published when the cursor could not move comes again."""
    seen = []

    async def handle(payload):
        seen.append(current_event().id)

    bus = EventBus("memory://", service_name="fills")
    bus.subscribe("trade.execution.completed", handle)
    publish = bus.transport.publish
    frozen = []

    async def publish_then_freeze(topic, messages):
        await publish(topic, messages)
        if not frozen:  # the first time: before the relay moves its cursor past the batch
            frozen.append(True)
            proxy.freeze()

    bus.transport.publish = publish_then_freeze
    relayed = Outbox(through(dsn, proxy), outbox.table)
    options = {"query_timeout": 0.5, "poll_interval": 0.1, "lock_interval": 0.1}
    async with bus, relayed.relay(bus, retry_backoff=0.02, **options):
        await write(dsn, outbox, 1)
        await eventually(lambda: len(seen) == 2, "published again after the freeze")
        await eventually(marked(outbox, 1), "the cursor stored once back")
    assert seen[0] == seen[1]  # the same event id: an idempotent subscription runs once
    assert proxy.dropped  # the cursor update went into the frozen network
    assert log_lines.named("outbox_relay_ended_stale_session")
