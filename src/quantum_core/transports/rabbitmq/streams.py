"""Reading a RabbitMQ stream from its first offset to its end, over AMQP 0-9-1.

AMQP does not tell where a stream ends (its queue.declare-ok counts no messages), so the
reader publishes a marker of its own and reads until that marker comes: everything stored
before the read began is read, whatever comes after is not waited for. Markers of other
readers are skipped. Both the history copy and the catalog read through here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

__all__ = ["MARKER", "OFFSET", "read_stream"]

MARKER = "x-quantum-history-marker"
"""Header of the markers a read publishes into the stream (skipped by every reader)."""
OFFSET = "x-stream-offset"
"""Header RabbitMQ gives each message read from a stream: its offset there."""
_BATCH = 200
_FIRST: dict[str, Any] = {"x-stream-offset": "first"}

Take = Callable[[list[AbstractIncomingMessage]], Awaitable[None]]
"""Called with each batch of messages read (never a marker), before the batch is acked."""


async def read_stream(
    channel: AbstractChannel, stream: str, take: Take, *, restart_after: float | None = None
) -> int | None:
    """Hand ``take`` every message of ``stream`` up to a marker published now, in order.

    Returns the marker's offset (the stream's end when the read began). ``channel`` should
    have publisher confirms (the marker is stored before reading); its prefetch is set
    here. Unbounded: the caller bounds it (``asyncio.timeout``).

    ``restart_after``: when nothing arrived for this many seconds, read again from the
    first offset (``take`` then sees messages again: only for a ``take`` that does not
    mind). RabbitMQ 3.10 at times stops delivering to a stream consumer when retention
    deletes the segment it reads (seen in 3 of 100 reads with segments of a few records).
    """
    marker = os.urandom(8).hex()
    await channel.default_exchange.publish(
        aio_pika.Message(b"", headers={MARKER: marker}), routing_key=stream
    )
    await channel.set_qos(prefetch_count=_BATCH * 2)
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    source = await channel.get_queue(stream, ensure=False)
    tag = await source.consume(arrived.put, no_ack=False, arguments=_FIRST)
    done = False
    end: object = None
    while not done:
        try:
            async with asyncio.timeout(restart_after):
                batch = [await arrived.get()]
        except TimeoutError:
            await source.cancel(tag)
            arrived = asyncio.Queue()  # what the cancelled consumer still gets goes nowhere
            tag = await source.consume(arrived.put, no_ack=False, arguments=_FIRST)
            continue
        while not arrived.empty() and len(batch) < _BATCH:
            batch.append(arrived.get_nowait())
        kept = []
        for message in batch:
            headers = message.headers or {}
            if MARKER in headers:
                if not done and _text(headers[MARKER]) == marker:
                    done, end = True, headers.get(OFFSET)
            elif not done:
                kept.append(message)
        if kept:
            await take(kept)
        await batch[-1].ack(multiple=True)
    await source.cancel(tag)
    return end if isinstance(end, int) else None


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
