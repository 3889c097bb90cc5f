"""RabbitMQ fixtures for the contract suite and the integration tests.

Every test gets a prefix of its own (its exchange and queue names start with it); what the
transports declared under it is deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from quantum_core import Transport
from quantum_core.testing import TransportFeatures
from service_helpers import service_missing

__all__ = [
    "AMQP_URL",
    "amqp_url",
    "delete_rabbitmq_names",
    "rabbitmq_declared",
    "rabbitmq_prefix",
    "rabbitmq_transport_factory",
    "rabbitmq_transport_features",
    "rabbitmq_transports",
]

AMQP_URL = os.environ.get("QUANTUM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
async def amqp_url() -> str:
    """The shared RabbitMQ; the test must use names under a prefix of its own."""
    try:
        import aio_pika
    except ImportError as exc:
        service_missing("aio-pika (pip install 'quantum-core[rabbitmq]')", exc)
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
    except Exception as exc:
        service_missing("RabbitMQ", exc)
    await connection.close()
    return AMQP_URL


async def delete_rabbitmq_names(url: str, prefix: str, queues: set[str]) -> None:
    """Delete these queues and the prefix's exchange (ignoring what is already gone)."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        for name in sorted(queues):
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.ChannelClosed:  # gone already: take another channel
                continue
            finally:
                if not channel.is_closed:
                    await channel.close()
        channel = await connection.channel()
        try:
            await channel.exchange_delete(prefix)
        finally:
            if not channel.is_closed:
                await channel.close()
    finally:
        await connection.close()


@pytest.fixture
async def rabbitmq_prefix(amqp_url: str) -> AsyncIterator[str]:
    """A prefix of the test's own; queues the test's transports declared go afterwards."""
    prefix = f"qc-test-{uuid.uuid4().hex[:12]}"
    declared: set[str] = set()
    _DECLARED[prefix] = declared
    yield prefix
    _DECLARED.pop(prefix, None)
    await delete_rabbitmq_names(amqp_url, prefix, declared)


_DECLARED: dict[str, set[str]] = {}


@pytest.fixture
def rabbitmq_declared(rabbitmq_prefix: str) -> set[str]:
    """Queue names to delete after the test (add what a transport of your own declared)."""
    return _DECLARED[rabbitmq_prefix]


@pytest.fixture
async def rabbitmq_transports(
    amqp_url: str, rabbitmq_prefix: str
) -> AsyncIterator[Callable[..., Transport]]:
    """Make transports under the test's prefix, remembering what they declare.

    Each is closed after the test (again, if the test did): a connection left open would
    be closed with the test's event loop, and aio-pika's close callbacks with it.
    """
    from quantum_core.transports.rabbitmq import RabbitMQTransport

    declared = _DECLARED[rabbitmq_prefix]
    made: list[RabbitMQTransport] = []

    def make(**options: object) -> RabbitMQTransport:
        transport = RabbitMQTransport(amqp_url, prefix=rabbitmq_prefix, **options)  # type: ignore[arg-type]
        transport._state.declared = declared  # shared: one set for the whole test
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
def rabbitmq_transport_factory(
    rabbitmq_transports: Callable[..., Transport],
) -> Callable[[], Transport]:
    return rabbitmq_transports


@pytest.fixture
def rabbitmq_transport_features() -> TransportFeatures:
    # Closing a channel requeues at once; the rest is the bus's fetch poll.
    return TransportFeatures(redelivery_timeout=2.0)
