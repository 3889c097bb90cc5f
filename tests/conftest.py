"""Shared fixtures: every test starts and ends with no process-wide bus or policy store.

Each broker's fixtures live in a module of their own (``redis_fixtures``, ``nats_fixtures``,
``rabbitmq_fixtures``); a test that runs on every transport takes the pytest plugin's
``quantum_core_transport`` (src/_quantum_core_pytestplugin.py), or ``transport_factory`` and
``transport_features`` below for the contract's fast redelivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from quantum_core import (
    shutdown_event_bus,
    shutdown_health_checker,
    shutdown_policy_store,
    trace_context,
    transport_from_url,
)
from quantum_core.testing import MakeTransport, TransportFeatures, capture_logs

pytest_plugins = [
    "redis_fixtures",
    "redis_cluster",
    "nats_fixtures",
    "rabbitmq_fixtures",
    "kafka_fixtures",
    "otel_fixtures",
]


@pytest.fixture(autouse=True, scope="session")
def _state_outside_the_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep what quantum_core saves per user (policy snapshots) out of the real home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
        yield


@pytest.fixture(autouse=True)
async def _clean_runtime() -> AsyncIterator[None]:
    trace_context.clear()
    yield
    await shutdown_event_bus()
    await shutdown_policy_store()
    await shutdown_health_checker()


class LogLines:
    """The test's log lines so far: ``log_lines()`` all of them, ``log_lines.named(event)``."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self._lines = lines

    def __call__(self) -> list[dict[str, Any]]:
        return list(self._lines)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self._lines if line["event"] == event]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """The log lines of the test as dicts (``capture_logs``), nothing written meanwhile."""
    with capture_logs() as lines:
        yield LogLines(lines)


# How soon an event a consumer abandoned reaches another one: as soon as each transport
# allows, so that the redelivery checks take a second, not the defaults' thirty.
FAST_REDELIVERY = {"redis": {"claim_idle": "1.0"}, "nats": {"ack_wait": "1.0"}}
FEATURES = {
    "memory": TransportFeatures(redelivery_timeout=0.5),
    "redis": TransportFeatures(redelivery_timeout=2.0),
    # A NATS consumer that closes hands its messages back at once (NAK); one that dies
    # leaves them for ack_wait. Closing a RabbitMQ channel requeues at once.
    "nats": TransportFeatures(redelivery_timeout=2.0),
    "amqp": TransportFeatures(redelivery_timeout=2.0),
    # A closing Kafka replica leaves its group at once, but the rebalance that hands its
    # partitions on takes Tansu half the session timeout (1 s at the 2 s tests use); events
    # without an ordering key go to any partition, so only a key keeps publish order (the
    # ordering checks publish with one).
    "kafka": TransportFeatures(redelivery_timeout=3.0, orders_unkeyed=False),
}


@pytest.fixture
def transport_factory(quantum_core_transport: str) -> MakeTransport:
    """New transports on the plugin's URL (one namespace), with the fastest redelivery."""
    parts = urlsplit(quantum_core_transport)
    options = FAST_REDELIVERY.get(parts.scheme, {})
    query = urlencode([*parse_qsl(parts.query), *options.items()])
    url = urlunsplit(parts._replace(query=query))
    return lambda: transport_from_url(url)


@pytest.fixture
def transport_features(quantum_core_transport: str) -> TransportFeatures:
    """What the transport promises, and how fast (for ``check_transport``)."""
    return FEATURES[urlsplit(quantum_core_transport).scheme]
