"""Dead letters on RabbitMQ: a durable queue per topic, read and deleted by browsing it.

A queue has no random access, so reading takes messages with basic.get on a channel of
its own and then closes that channel, which puts every one back where it was (a classic
queue keeps a requeued message's place). Deleting acknowledges the chosen ones before the
close. While a read runs, another reader does not see the messages it holds: fine for a
place people and the CLI look at now and then, not for a hot path.

Ids are ``{unix ns, 20 digits}-{8 hex}``, given when the record is stored, so they sort
like the queue (up to clock differences between hosts) and a new one never repeats an old.
A record stored twice for one message (a crash between the confirm and the ack) carries
the same origin header; readers show the first and deleting it deletes both.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from .channels import open_channel

__all__ = ["ORIGIN", "browse_dead_letters", "check_id", "delete_by_id", "new_id"]

ORIGIN = "x-quantum-origin"
"""Header of a dead-letter record: the group and the message id it was set aside from."""
_ID = re.compile(r"[0-9]{20}-[0-9a-f]{8}")


def new_id() -> str:
    """A new dead-letter id: the time in ns, then random, so ids sort like the queue."""
    return f"{time.time_ns():020d}-{os.urandom(4).hex()}"


def check_id(letter_id: str) -> str:
    """Return ``letter_id`` if this transport can have made it, else raise ValueError."""
    if isinstance(letter_id, str) and _ID.fullmatch(letter_id):
        return letter_id
    raise ValueError(
        f"not a RabbitMQ dead-letter id (such as '01700000000000000000-1a2b3c4d'): {letter_id!r}"
    )


async def browse_dead_letters(
    connection: AbstractConnection, queue: str, limit: int, start: str | None
) -> list[tuple[str, bytes]]:
    """Up to ``limit`` (id, record) from the queue, from ``start`` (or the first after it) on."""
    channel = await open_channel(connection, confirms=False)
    try:
        found: list[tuple[str, bytes]] = []
        origins: set[str] = set()
        started = start is None
        dead = await channel.get_queue(queue, ensure=False)
        while len(found) < limit:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            letter_id = message.message_id or ""
            if not started:
                if letter_id < start:  # type: ignore[operator]  # start is set here
                    continue
                started = True
            origin = _origin(message)
            if origin is not None:
                if origin in origins:
                    continue
                origins.add(origin)
            found.append((letter_id, message.body))
        return found
    finally:
        await channel.close()  # requeues everything taken, in place


async def delete_by_id(connection: AbstractConnection, queue: str, ids: Sequence[str]) -> int:
    """Acknowledge the records with these ids (and their duplicates); return how many ids."""
    wanted = set(ids)
    channel = await open_channel(connection, confirms=False)
    try:
        dead = await channel.get_queue(queue, ensure=False)
        taken: list[AbstractIncomingMessage] = []
        while True:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        doomed = [m for m in taken if m.message_id in wanted]
        deleted = len({m.message_id for m in doomed})
        doomed_origins = {o for o in map(_origin, doomed) if o is not None}
        for message in taken:
            if message.message_id in wanted or _origin(message) in doomed_origins:
                await message.ack()
        # acks are not confirmed; a basic.qos round trip makes sure the broker has them
        await channel.set_qos(prefetch_count=0)
        return deleted
    finally:
        await channel.close()


def _origin(message: AbstractIncomingMessage) -> str | None:
    value = (message.headers or {}).get(ORIGIN)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def dead_letter_message(record: bytes, origin: str | None) -> aio_pika.Message:
    return aio_pika.Message(
        record,
        message_id=new_id(),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={ORIGIN: origin} if origin else None,
    )
