"""A topic's history on RabbitMQ, for groups that start ``from_beginning``.

A queue holds only what was routed to it after it was bound, so a new group would start
empty. The transport therefore binds a stream per topic (``{prefix}.history.{topic}``,
bounded by ``history_max_bytes`` / ``history_max_age``) that keeps what was published,
whoever consumes it. A new group that asks for the beginning is bound first, then filled
with a copy of the stream up to a marker published after the binding (``streams.py``):
what was routed before the binding comes from the copy, what came after is already in the
queue.

At the boundary a message may arrive twice (routed after the binding and stored in the
stream before the marker): delivery stays at-least-once, as everywhere else. The copy goes
behind what the queue already received, so for the first moments of a new group, history
and new events interleave.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from .channels import open_channel
from .streams import OFFSET, read_stream

__all__ = ["copy_history", "stream_arguments"]

_SEGMENT_MAX = 64 * 1024 * 1024


def stream_arguments(max_bytes: int, max_age: float | None) -> dict[str, Any]:
    """The x-arguments of a history stream: retention by size, and by age when set."""
    arguments: dict[str, Any] = {
        "x-queue-type": "stream",
        "x-max-length-bytes": max_bytes,
        # Retention drops whole segments: keep them a fraction of the limit.
        "x-stream-max-segment-size-bytes": max(1024 * 1024, min(_SEGMENT_MAX, max_bytes // 8)),
    }
    if max_age is not None:
        arguments["x-max-age"] = f"{max(1, round(max_age))}s"
    return arguments


async def copy_history(
    connection: AbstractConnection, stream: str, queue: str, timeout: float = 60.0
) -> int:
    """Copy ``stream`` into ``queue`` up to a marker published now; return how many."""
    channel = await open_channel(connection, confirms=True)
    copied = 0

    async def copy(batch: list[AbstractIncomingMessage]) -> None:
        nonlocal copied
        confirms = []
        for message in batch:
            headers = dict(message.headers or {})
            headers.pop(OFFSET, None)  # the stream's, not the message's
            confirms.append(
                channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers=headers or None,
                        message_id=message.message_id,
                        timestamp=message.timestamp,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue,
                )
            )
        await asyncio.gather(*confirms)
        copied += len(confirms)

    try:
        async with asyncio.timeout(timeout):
            await read_stream(channel, stream, copy)
        return copied
    finally:
        await channel.close()
