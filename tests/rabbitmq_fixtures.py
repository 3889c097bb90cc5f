"""RabbitMQ fixtures for the contract suite and the integration tests (placeholder)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from quantum_core import Transport
from quantum_core.testing import TransportFeatures

__all__ = ["rabbitmq_transport_factory", "rabbitmq_transport_features"]


@pytest.fixture
def rabbitmq_transport_factory() -> Callable[[], Transport]:
    pytest.skip("the RabbitMQ transport is not built yet")


@pytest.fixture
def rabbitmq_transport_features() -> TransportFeatures:
    return TransportFeatures()
