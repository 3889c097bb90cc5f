"""The transport contract, unchanged, on a Redis Cluster the session starts (3 masters)."""

import pytest

from quantum_core.bus.registry import transport_from_url
from quantum_core.testing import CHECKS, TransportFeatures, check_transport
from quantum_core.testing.brokers import new_namespace


@pytest.mark.parametrize("check", list(CHECKS))
async def test_contract_on_a_cluster(check, redis_cluster):
    url = f"{redis_cluster.url}?prefix={new_namespace()}&claim_idle=1.0"
    await check_transport(
        lambda: transport_from_url(url),
        features=TransportFeatures(redelivery_timeout=2.0),
        checks=[check],
    )
