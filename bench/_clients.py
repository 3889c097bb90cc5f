"""The competitors of the process benchmarks, behind one shape: a publisher and a consumer.

``open_publisher(url, key)`` returns ``(send, close, resp)``: ``send(k, stamp)`` publishes
``k`` events in one call (one ``publish`` / ``XADD`` when ``k`` is 1, else a batch), each
carrying ``stamp`` (CLOCK_MONOTONIC ns) when it is not None. ``open_consumer(url, key,
from_start, record)`` starts consuming and calls ``record(stamp)`` once per handled event;
it returns ``(close, resp)``. ``resp`` is the protocol the client's connection actually
speaks, read back from the server (CLIENT INFO).

Every consumer acknowledges after its handler: the bus per its own rules (the handler
returned), raw redis-py with one XACK per XREADGROUP batch of 100, FastStream per message
(StreamSub) or per batch (batch=True) with ``AckPolicy.ACK``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis

from quantum_core import EventBus, RedisStreamsTransport
from quantum_core.bus.envelope import Envelope, encode

TOPIC = "signals"
READ_COUNT = 100
PAYLOAD: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "action": "LONG",
    "confidence": 0.8123,
    "entry_price": 50123.45,
    "tp_price": 51125.92,
    "sl_price": 49622.21,
    "strategy": "momentum-v2",
    "note": "x" * 120,
}
# What raw redis-py writes: the bus's own envelope bytes, so both move the same ~300 bytes.
ENVELOPE = encode(Envelope("0" * 32, TOPIC, PAYLOAD, "1" * 32, "t", "bench", {}))

Send = Callable[[int, int | None], Awaitable[None]]
Close = Callable[[], Awaitable[None]]
Record = Callable[[int | None], None]


async def resp_of(client: Any) -> int | None:
    """The RESP version the server sees on this client's connection."""
    with contextlib.suppress(Exception):
        return int((await client.client_info())["resp"])
    return None


class Bus:
    """quantum_core's EventBus on Redis Streams: ``publish_many`` and a no-op handler."""

    group = "bench:handle"

    @staticmethod
    def stream_key(key: str) -> str:
        return f"{key}:stream:{TOPIC}"

    @staticmethod
    async def open_publisher(url: str, key: str) -> tuple[Send, Close, int | None]:
        transport = RedisStreamsTransport(url, prefix=key)
        bus = EventBus(transport, service_name="pub")
        await bus.initialize()
        plain = [PAYLOAD] * READ_COUNT

        async def send(k: int, stamp: int | None) -> None:
            payloads = plain if stamp is None else [{**PAYLOAD, "t": stamp}] * k
            if k == 1:
                await bus.publish(TOPIC, payloads[0])
            else:
                await bus.publish_many(TOPIC, payloads[:k])

        async def close() -> None:
            await bus.stop()
            await transport.close()

        return send, close, await resp_of(transport._state.commands)

    @staticmethod
    async def open_consumer(
        url: str, key: str, from_start: bool, record: Record
    ) -> tuple[Close, int | None]:
        transport = RedisStreamsTransport(url, prefix=key)
        bus = EventBus(transport, service_name="bench", read_count=READ_COUNT, concurrency=100)

        async def handle(payload: dict[str, Any]) -> None:
            record(payload.get("t"))

        bus.subscribe(TOPIC, handle, name="handle", from_beginning=from_start)
        await bus.start()

        async def close() -> None:
            await bus.stop()
            await transport.close()

        return close, await resp_of(transport._state.commands)


class Raw:
    """redis-py by hand: pipelined XADD; XREADGROUP COUNT 100 and one XACK per batch."""

    group = "g"

    @staticmethod
    def stream_key(key: str) -> str:
        return key

    @staticmethod
    async def open_publisher(url: str, key: str) -> tuple[Send, Close, int | None]:
        client = redis.from_url(url)

        async def send(k: int, stamp: int | None) -> None:
            fields = {b"event": ENVELOPE} if stamp is None else {b"event": ENVELOPE, b"t": stamp}
            if k == 1:
                await client.xadd(key, fields, maxlen=1_000_000, approximate=True)
                return
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(k):
                    pipe.xadd(key, fields, maxlen=1_000_000, approximate=True)
                await pipe.execute()

        return send, client.aclose, await resp_of(client)

    @staticmethod
    async def open_consumer(
        url: str, key: str, from_start: bool, record: Record
    ) -> tuple[Close, int | None]:
        client = redis.from_url(url)
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: another replica made it
            await client.xgroup_create(key, "g", id="0" if from_start else "$", mkstream=True)
        name = f"c{id(client)}"
        stopping = asyncio.Event()

        async def consume() -> None:
            while not stopping.is_set():
                reply = await client.xreadgroup("g", name, {key: ">"}, count=READ_COUNT, block=100)
                ids = []
                for entry_id, fields in entries_of(reply):
                    stamp = fields.get(b"t")
                    record(None if stamp is None else int(stamp))
                    ids.append(entry_id)
                if ids:
                    await client.xack(key, "g", *ids)

        task = asyncio.create_task(consume())

        async def close() -> None:
            stopping.set()
            await task
            await client.aclose()

        return close, await resp_of(client)


def entries_of(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an XREADGROUP reply: RESP3 gives ``{key: [[entries]]}``, RESP2
    ``[[key, entries]]``."""
    if isinstance(reply, dict):
        out = []
        for value in reply.values():
            out.extend(value[0] if value and isinstance(value[0], list) else value)
        return out
    return [entry for _, entries in reply or () for entry in entries]
