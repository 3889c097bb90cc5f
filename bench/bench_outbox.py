"""The transactional outbox on PostgreSQL: what writing through it costs, and what the relay adds.

* Writes: events/s through ``outbox.publish`` (one event per transaction, 4 writers at once)
  beside the same rows (id, type, JSON body) inserted plainly into a plain table.
* Relay: committed rows forwarded to Redis Streams (rows/s, from the relay's start until the
  last is marked) beside ``bus.publish_many`` of the same events in batches of the same size.
* Latency on the NOTIFY path at 2,000 events/s: from the writer's COMMIT returning to the
  handler running (outbox, relay, Redis, consumer), beside ``bus.publish`` returning to the
  handler running at the same rate (the same bus without the outbox).

PostgreSQL is ``$QUANTUM_CORE_BENCH_POSTGRES_DSN``, else the local server on 5432 (database
``test``); tables of the run's own, dropped after.

    .venv/bin/python bench/run.py --only outbox [--quick]
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg
import pydantic_core

from _harness import Context, Row, Stat, Target, percentile
from quantum_core import EventBus, Outbox, RedisStreamsTransport, current_event

# The SQL names only the run's own tables; values are parameters.
# ruff: noqa: S608

TITLE = "outbox (PostgreSQL)"
SECTION = "Transactional outbox on PostgreSQL"
DSN = os.environ.get("QUANTUM_CORE_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
WRITERS = 4
BATCH = 500
RATE = 2_000
PAYLOAD = {"order_id": "ORD-000001", "symbol": "BTCUSDT", "quantity": 0.25, "price": 64_000.5}


async def _drop(connection: asyncpg.Connection, table: str) -> None:
    await connection.execute(
        f'DROP TABLE IF EXISTS "{table}", "{table}_relay", "{table}_plain"; '
        f'DROP FUNCTION IF EXISTS "{table}_wake"() CASCADE'
    )


async def _writes(outbox: Outbox, connections: list[asyncpg.Connection], count: int) -> float:
    """Events/s written by WRITERS connections, one event per transaction."""

    async def writer(connection: asyncpg.Connection) -> None:
        for _ in range(count // WRITERS):
            async with connection.transaction():
                await outbox.publish(connection, "bench.outbox", PAYLOAD)

    started = time.perf_counter()
    await asyncio.gather(*(writer(c) for c in connections))
    return count / (time.perf_counter() - started)


async def _plain_writes(table: str, connections: list[asyncpg.Connection], count: int) -> float:
    insert = f'INSERT INTO "{table}_plain" (event_id, event_type, body) VALUES ($1, $2, $3)'

    async def writer(connection: asyncpg.Connection) -> None:
        for _ in range(count // WRITERS):
            async with connection.transaction():
                await connection.execute(
                    insert, uuid.uuid4().hex, "bench.outbox", pydantic_core.to_json(PAYLOAD)
                )

    started = time.perf_counter()
    await asyncio.gather(*(writer(c) for c in connections))
    return count / (time.perf_counter() - started)


async def _relay_rate(outbox: Outbox, url: str, prefix: str, count: int) -> float:
    """Rows/s from the relay's start until ``count`` committed rows are forwarded."""
    async with RedisStreamsTransport(url, prefix=prefix) as transport:
        bus = EventBus(transport, service_name="bench")
        started = time.perf_counter()
        async with outbox.relay(bus, batch_size=BATCH) as relay:
            while relay.forwarded < count:  # noqa: ASYNC110 - a counter, polled each ms
                await asyncio.sleep(0.001)
            return count / (time.perf_counter() - started)


async def _publish_many_rate(url: str, prefix: str, count: int) -> float:
    async with RedisStreamsTransport(url, prefix=prefix) as transport:
        bus = EventBus(transport, service_name="bench")
        started = time.perf_counter()
        for _ in range(count // BATCH):
            await bus.publish_many("bench.outbox", [PAYLOAD] * BATCH)
        return count / (time.perf_counter() - started)


async def _latencies(url: str, prefix: str, seconds: float, send) -> list[float]:
    """µs from ``send()`` returning to the handler running, at RATE events/s."""
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    total = int(RATE * seconds)
    done = asyncio.Event()

    async def handle(payload: dict) -> None:
        arrived[current_event().id] = time.perf_counter()
        if len(arrived) == total:
            done.set()

    async with RedisStreamsTransport(url, prefix=prefix) as transport:
        bus = EventBus(transport, service_name="bench")
        bus.subscribe("bench.latency", handle)
        async with bus:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for n in range(total):
                delay = start + n / RATE - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                event_id = await send(bus)
                sent_at[event_id] = time.perf_counter()
            await asyncio.wait_for(done.wait(), 30)
    return sorted((arrived[event_id] - sent) * 1e6 for event_id, sent in sent_at.items())


async def measure(ctx: Context) -> dict[str, float]:
    count = ctx.size(8_000, 2_000)
    table = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(DSN)
    connections = [await asyncpg.connect(DSN) for _ in range(WRITERS)]
    out: dict[str, float] = {}
    try:
        outbox = Outbox(DSN, table, service_name="bench")
        await outbox.install()
        await admin.execute(
            f'CREATE TABLE "{table}_plain" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,'
            " event_id text NOT NULL, event_type text NOT NULL, body bytea NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        out["plain_writes"] = await _plain_writes(table, connections, count)
        out["outbox_writes"] = await _writes(outbox, connections, count)
        prefix = f"bench-outbox-{uuid.uuid4().hex[:6]}"
        out["relay"] = await _relay_rate(outbox, ctx.url, prefix, count)
        out["publish_many"] = await _publish_many_rate(ctx.url, prefix, count)

        async def through_outbox(bus: EventBus) -> str:
            async with connections[0].transaction():
                return await outbox.publish(connections[0], "bench.latency", PAYLOAD)

        async def directly(bus: EventBus) -> str:
            return await bus.publish("bench.latency", PAYLOAD)

        seconds = ctx.size(3, 1)
        async with RedisStreamsTransport(ctx.url, prefix=prefix) as transport:
            relay_bus = EventBus(transport, service_name="relay")
            async with outbox.relay(relay_bus):
                relayed = await _latencies(ctx.url, prefix, seconds, through_outbox)
        direct = await _latencies(ctx.url, prefix, seconds, directly)
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            out[f"outbox_{label}"] = percentile(relayed, q)
            out[f"direct_{label}"] = percentile(direct, q)
    finally:
        await _drop(admin, table)
        for connection in (admin, *connections):
            await connection.close()
        if ctx.server is not None:
            ctx.server.flush()
    return out


def rows(stats: dict[str, Stat], ctx: Context) -> list[Row]:
    rate = f"{RATE:,}/s"
    return [
        Row(
            SECTION,
            f"outbox.publish, 1 event per transaction, {WRITERS} writers",
            "events/s",
            stats["outbox_writes"],
            "plain INSERT of the same rows",
            stats["plain_writes"],
            Target(">=", 0.5, "ratio"),
            note="the xid8 stamp and the statement's NOTIFY trigger are the difference",
        ),
        Row(
            SECTION,
            f"relay: committed rows to Redis Streams, batches of {BATCH}",
            "events/s",
            stats["relay"],
            f"bus.publish_many, batches of {BATCH}",
            stats["publish_many"],
            Target(">=", 0.5, "ratio"),
            note="read, publish, advance the cursor per batch",
        ),
        *(
            Row(
                SECTION,
                f"{label} at {rate}: COMMIT to handler (NOTIFY path)",
                "µs",
                stats[f"outbox_{label}"],
                "bus.publish to handler",
                stats[f"direct_{label}"],
                note="the relay's share is the difference",
            )
            for label in ("p50", "p99")
        ),
    ]


if __name__ == "__main__":
    from run import main

    main(["--only", "outbox"])
