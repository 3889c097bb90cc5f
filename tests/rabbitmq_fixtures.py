"""RabbitMQ fixtures: the shared broker, a prefix of the test's own, transports under it.

Every test gets a prefix of its own (its exchange and queue names start with it); what the
transports declared under it is deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from quantum_core import Transport
from quantum_core.testing.brokers import delete_rabbitmq_names, new_namespace
from service_helpers import require

__all__ = ["amqp_url", "rabbitmq_declared", "rabbitmq_prefix", "rabbitmq_transports"]


@pytest.fixture
def amqp_url() -> str:
    """The shared RabbitMQ; the test must use names under a prefix of its own."""
    return require("amqp")


@pytest.fixture
async def rabbitmq_prefix(amqp_url: str) -> AsyncIterator[str]:
    """A prefix of the test's own; queues the test's transports declared go afterwards."""
    prefix = new_namespace()
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
