"""The outbox against the real PostgreSQL: commits out of order, rollbacks, bad input, scale.

Every test has an outbox table of its own (dropped after) on the shared server; the bus is
in memory, so what is tested is the outbox and its relay, not a broker.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter

import asyncpg
import pytest

from outbox_helpers import drop_outbox, installed_outbox, new_table, postgres_dsn
from quantum_core import EventBus, Outbox, current_event, trace_context
from quantum_core.testing import eventually


@pytest.fixture
async def dsn():
    return await postgres_dsn()


@pytest.fixture
async def outbox(dsn):
    async with installed_outbox(dsn, service_name="execution") as outbox:
        yield outbox


@pytest.fixture
async def connect(dsn):
    opened = []

    async def connect():
        connection = await asyncpg.connect(dsn, timeout=5)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.terminate()


class Seen:
    """What a handler received: payloads, event ids and trace ids, in order."""

    def __init__(self):
        self.payloads = []
        self.ids = []
        self.traces = []

    async def __call__(self, payload):
        event = current_event()
        self.payloads.append(payload)
        self.ids.append(event.id)
        self.traces.append(event.trace_id)


@pytest.fixture
async def bus():
    bus = EventBus("memory://", service_name="listener")
    yield bus
    await bus.stop()


async def test_a_row_committed_after_a_later_one_is_delivered_not_skipped(outbox, bus, connect):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    first, second = await connect(), await connect()
    async with bus, outbox.relay(bus, poll_interval=0.05):
        early = first.transaction()
        await early.start()
        await outbox.publish(first, "trade.execution.completed", {"order": "A"})  # id 1, open
        async with second.transaction():
            await outbox.publish(second, "trade.execution.completed", {"order": "B"})  # id 2
        # A cursor over ids would send B now and move past A for good. The guard holds B
        # back while A's transaction is open (a negative check: give the relay rounds).
        await asyncio.sleep(0.3)
        assert seen.payloads == []
        await early.commit()
        await eventually(lambda: len(seen.payloads) == 2, "both events delivered")
    assert seen.payloads == [{"order": "A"}, {"order": "B"}]  # transaction order


async def test_rows_go_in_transaction_order_where_the_ids_gain_a_digit(outbox, bus, connect):
    # Transaction ids 9, 10 and 100 sort "10" < "100" < "9" as text: a relay that ordered
    # them so published 10 and 100 before 9, then sent both again after its cursor (9). It
    # happened on a real server each time its transaction ids gained a digit (99,999 ->
    # 100,000): ids are set here, as any committed transaction's could be.
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    connection = await connect()
    for order, xid in (("A", 9), ("B", 10), ("C", 100)):
        async with connection.transaction():
            event_id = await outbox.publish(connection, "trade.execution.completed", {"o": order})
            await connection.execute(
                f'UPDATE "{outbox.table}" SET xid = $1::text::xid8 WHERE event_id = $2',  # noqa: S608
                str(xid),
                event_id,
            )
    async with bus, outbox.relay(bus, poll_interval=0.05) as relay:
        await eventually(lambda: len(seen.payloads) >= 3, "the three events delivered")
        await asyncio.sleep(0.3)  # a negative check: a second round would send them again
    assert seen.payloads == [{"o": "A"}, {"o": "B"}, {"o": "C"}]
    assert relay.forwarded == 3


async def test_a_rolled_back_event_is_never_delivered(outbox, bus, connect):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    connection = await connect()
    async with bus, outbox.relay(bus):
        transaction = connection.transaction()
        await transaction.start()
        await outbox.publish(connection, "trade.execution.completed", {"order": "gone"})
        await transaction.rollback()  # the business logic failed: the order never was
        async with connection.transaction():
            await outbox.publish(connection, "trade.execution.completed", {"order": "kept"})
        await eventually(lambda: seen.payloads, "the committed event delivered")
        await asyncio.sleep(0.2)  # a negative check: the rolled-back one had its chance
    assert seen.payloads == [{"order": "kept"}]


async def test_the_event_keeps_its_id_trace_id_and_source(outbox, bus, connect):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    connection = await connect()
    async with bus, outbox.relay(bus):
        with trace_context.scope() as trace_id:
            async with connection.transaction():
                event_id = await outbox.publish(
                    connection, "trade.execution.completed", {"n": 1}, headers={"k": "v"}
                )
                ids = await outbox.publish_many(
                    connection, "trade.execution.completed", [{"n": 2}, {"n": 3}], "t-explicit"
                )
        await eventually(lambda: len(seen.ids) == 3, "three events delivered")
    assert seen.ids == [event_id, *ids]
    assert seen.traces == [trace_id, "t-explicit", "t-explicit"]
    assert [p["n"] for p in seen.payloads] == [1, 2, 3]


async def test_notify_wakes_the_relay_long_before_its_poll(outbox, bus, connect):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    connection = await connect()
    async with bus, outbox.relay(bus, poll_interval=60) as relay:
        await eventually(lambda: relay.is_active, "the relay active")
        async with connection.transaction():
            await outbox.publish(connection, "trade.execution.completed", {"n": 1})
        waited = await eventually(lambda: seen.payloads, "delivered on the NOTIFY", timeout=5)
    assert waited < 5  # a poll would have taken 60 s


async def test_an_event_held_behind_an_open_transaction_goes_soon_after_it_ends(
    outbox, bus, connect
):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    blocker, writer = await connect(), await connect()
    async with bus, outbox.relay(bus, poll_interval=60) as relay:
        await eventually(lambda: relay.is_active, "the relay active")
        unrelated = blocker.transaction()
        await unrelated.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")  # holds the horizon back
        async with writer.transaction():
            await outbox.publish(writer, "trade.execution.completed", {"n": 1})
        await asyncio.sleep(0.3)  # the NOTIFY came and found nothing: a negative check
        assert seen.payloads == []
        await unrelated.rollback()  # announces nothing
        await eventually(lambda: seen.payloads, "delivered by the quick looks", timeout=5)


async def test_without_notify_the_poll_still_finds_every_event(outbox, bus, connect):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    connection = await connect()
    await connection.execute(f'DROP TRIGGER "{outbox.table}_wake" ON "{outbox.table}"')
    async with bus, outbox.relay(bus, poll_interval=0.1):
        async with connection.transaction():
            await outbox.publish(connection, "trade.execution.completed", {"n": 1})
        await eventually(lambda: seen.payloads == [{"n": 1}], "delivered by the poll")


async def test_publish_outside_a_transaction_raises_and_writes_nothing(outbox, connect):
    connection = await connect()
    with pytest.raises(RuntimeError, match="needs an open transaction"):
        await outbox.publish(connection, "trade.execution.completed", {"n": 1})
    with pytest.raises(RuntimeError, match="needs an open transaction"):
        await outbox.publish_many(connection, "trade.execution.completed", [{"n": 1}])
    with pytest.raises(TypeError, match="asyncpg connection"):
        await outbox.publish(object(), "trade.execution.completed", {"n": 1})
    assert (await outbox.status()).backlog == 0


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        ({"price": object()}, TypeError, "not JSON-serialisable"),
        ({"price": math.nan}, ValueError, "NaN"),
        ("not a dict", TypeError, "must be a dict or a pydantic model"),
    ],
)
async def test_an_unencodable_payload_fails_before_anything_is_written(
    outbox, connect, payload, error, message
):
    connection = await connect()
    async with connection.transaction():
        with pytest.raises(error, match=message):
            await outbox.publish_many(
                connection, "trade.execution.completed", [{"fine": 1}, payload]
            )
        # the transaction is untouched: still usable, nothing of the failed call in it
        await outbox.publish(connection, "trade.execution.completed", {"fine": 2})
    assert (await outbox.status()).backlog == 1
    with pytest.raises(ValueError, match="invalid event type"):
        async with connection.transaction():
            await outbox.publish(connection, "not a type", {"n": 1})


async def test_install_is_idempotent_from_several_connections_at_once(dsn):
    table = new_table()
    outboxes = [Outbox(dsn, table) for _ in range(4)]
    try:
        await asyncio.gather(*(outbox.install() for outbox in outboxes))
        await outboxes[0].install()
        status = await outboxes[0].status()
    finally:
        await drop_outbox(dsn, table)
    assert (status.backlog, status.sent_total, status.relay_active) == (0, 0, False)


@pytest.mark.parametrize("table", ["Orders", "a-b", "x;drop", "", "s.t.u", "a" * 49, 7])
def test_a_bad_table_name_is_refused(table):
    with pytest.raises(ValueError, match="table must be a lowercase PostgreSQL name"):
        Outbox("postgresql://localhost/test", table)


def test_a_target_that_is_no_dsn_or_pool_is_refused():
    with pytest.raises(TypeError, match=r"DSN .* or an asyncpg pool"):
        Outbox(object())


async def test_status_shows_the_backlog_then_the_relay_and_retention_empties_it(
    outbox, bus, connect
):
    connection = await connect()
    async with connection.transaction():
        await outbox.publish_many(connection, "trade.execution.completed", [{"n": 1}, {"n": 2}])
    before = await outbox.status()
    assert (before.backlog, before.relay_active, before.sent_kept) == (2, False, 0)
    assert before.oldest_unsent_seconds is not None
    assert before.oldest_unsent_seconds >= 0
    async with bus, outbox.relay(bus, retention=0) as relay:
        assert relay.is_active
        await eventually(lambda: relay.forwarded == 2, "the backlog forwarded")
        status = await outbox.status()
        assert (status.backlog, status.sent_total, status.relay_active) == (0, 2, True)
        await eventually(
            lambda: _kept(outbox, 0), "sent rows deleted after the retention", timeout=5
        )


async def _kept(outbox, count):
    return (await outbox.status()).sent_kept == count


async def test_a_stopped_relay_starts_again_where_it_left_off(outbox, bus, connect):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    connection = await connect()
    relay = outbox.relay(bus)
    async with bus:
        for n in (1, 2):
            await relay.start()
            assert relay.is_active
            async with connection.transaction():
                await outbox.publish(connection, "trade.execution.completed", {"n": n})
            await eventually(lambda n=n: len(seen.payloads) == n, f"event {n} delivered")
            await relay.stop()
            assert not relay.is_active
            assert not (await outbox.status()).relay_active  # the lock went with it
    assert seen.payloads == [{"n": 1}, {"n": 2}]
    assert relay.forwarded == 2


async def test_a_pool_serves_as_the_target(dsn, bus):
    seen = Seen()
    bus.subscribe("trade.execution.completed", seen)
    table = new_table()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    try:
        outbox = Outbox(pool, table)
        await outbox.install()
        async with bus, outbox.relay(bus):
            async with pool.acquire() as connection, connection.transaction():
                await outbox.publish(connection, "trade.execution.completed", {"n": 1})
            await eventually(lambda: seen.payloads == [{"n": 1}], "delivered")
    finally:
        await pool.close()
        await drop_outbox(dsn, table)


WRITERS = 8
EVENTS = 10_000


async def test_ten_thousand_events_by_eight_writers_reach_an_idempotent_handler_once(
    outbox, bus, connect, log_lines
):
    runs = Counter()

    async def handle(payload):
        runs[current_event().id] += 1

    bus.subscribe("trade.execution.completed", handle, idempotent=True, concurrency=256)
    connections = [await connect() for _ in range(WRITERS)]
    written: list[str] = []

    async def writer(number, connection):
        rng = random.Random(number)
        per_writer = EVENTS // WRITERS
        done = 0
        while done < per_writer:
            size = min(rng.choice((1, 5, 20)), per_writer - done)
            async with connection.transaction():
                if size == 1:
                    written.append(
                        await outbox.publish(connection, "trade.execution.completed", {"w": number})
                    )
                else:
                    written.extend(
                        await outbox.publish_many(
                            connection, "trade.execution.completed", [{"w": number}] * size
                        )
                    )
                await asyncio.sleep(0)  # let the others interleave their transactions
            done += size

    async with bus, outbox.relay(bus) as relay:
        await asyncio.gather(*(writer(n, c) for n, c in enumerate(connections)))
        await eventually(lambda: len(runs) == EVENTS, "every event handled", timeout=60)
        await asyncio.sleep(0.2)  # a negative check: a second delivery would show now
    assert len(written) == len(set(written)) == EVENTS
    assert set(runs) == set(written)
    assert max(runs.values()) == 1
    relay_lines = [
        {key: line.get(key) for key in ("event", "error", "cursor")}
        for line in log_lines()
        if line["event"].startswith("outbox_relay")
    ]
    assert relay.forwarded == EVENTS, relay_lines  # no re-send without a crash
