"""Opening a channel on an aio-pika robust connection that may be reconnecting.

While a robust connection is down, ``connection.channel()`` raises a bare ``RuntimeError``
(or, just after the broker closed it, before aio-pika marked it down). Every channel the
transport opens goes through here: it waits for the reconnect, briefly, and otherwise fails
as a ``ConnectionError``, which the transport reports as a ``TransportError``.
"""

from __future__ import annotations

import asyncio

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from ..._backoff import backoff

__all__ = ["RECONNECT_WAIT", "open_bare_channel", "open_channel"]

RECONNECT_WAIT = 5.0
"""Seconds to wait for a lost connection to come back (as a NATS publish waits)."""
_RETRY_FIRST = 0.05  # seconds before opening a channel again, doubling, jittered
_RETRY_MOST = 1.0


async def open_channel(connection: AbstractConnection, *, confirms: bool) -> AbstractChannel:
    """A new channel (with publisher confirms if ``confirms``), once the connection is up."""
    failures = 0
    try:
        async with asyncio.timeout(RECONNECT_WAIT):
            while True:
                await connection.ready()
                try:
                    return await connection.channel(publisher_confirms=confirms)
                except RuntimeError:  # it closed under us and is not marked down yet
                    if connection.is_closed:  # closed by its owner: it never comes back
                        raise
                    failures += 1
                    await asyncio.sleep(backoff(failures, _RETRY_FIRST, _RETRY_MOST))
    except TimeoutError:
        raise ConnectionError(
            f"the connection to RabbitMQ is down and did not come back within {RECONNECT_WAIT:g} s"
        ) from None
    except RuntimeError:
        raise ConnectionError("the connection to RabbitMQ is closed") from None


async def open_bare_channel(connection: AbstractConnection) -> aiormq.abc.AbstractChannel:
    """A bare aiormq channel on the connection, once it is up: nothing reopens it.

    For passive declares: one of a missing queue makes the broker close the channel, and
    aio-pika's robust channel would reopen itself behind our back, so a channel opened in
    its place would leave it open, one per missing queue, up to RabbitMQ's 2047. Nor does
    a bare channel answer a passive declare from aio-pika's cache.
    """
    try:
        async with asyncio.timeout(RECONNECT_WAIT):
            await connection.ready()
    except TimeoutError:
        raise ConnectionError(
            f"the connection to RabbitMQ is down and did not come back within {RECONNECT_WAIT:g} s"
        ) from None
    transport = connection.transport
    if transport is None:
        raise ConnectionError("the connection to RabbitMQ is closed")
    return await transport.connection.channel()
