"""One contract, every transport: the same checks on memory and on the real Redis."""

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_core import MemoryTransport, Transport
from quantum_core.testing import (
    CHECKS,
    TransportFeatures,
    check_payload_round_trip,
    check_transport,
)

TRANSPORTS = ["memory", "redis", "nats", "rabbitmq"]


@pytest.fixture(params=TRANSPORTS)
def transport_name(request) -> str:
    return request.param


@pytest.fixture
def make_transport(transport_name, request) -> Callable[[], Transport]:
    """The `<name>_transport_factory` fixture: a callable that opens a new transport."""
    return request.getfixturevalue(f"{transport_name}_transport_factory")


@pytest.fixture
def features(transport_name, request) -> TransportFeatures:
    return request.getfixturevalue(f"{transport_name}_transport_features")


@pytest.mark.parametrize("check", list(CHECKS))
async def test_contract(check, make_transport, features):
    await check_transport(make_transport, features=features, checks=[check])


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
PAYLOADS = st.lists(st.dictionaries(st.text(), JSON_VALUES, max_size=6), min_size=1, max_size=10)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payloads=PAYLOADS)
def test_payloads_round_trip_unchanged(make_transport, payloads):
    asyncio.run(check_payload_round_trip(make_transport, payloads))


def test_deeply_nested_payload_round_trips(make_transport):
    deep: dict = {"leaf": "ü€😀"}
    for depth in range(60):
        deep = {f"level{depth}": [deep]}
    asyncio.run(check_payload_round_trip(make_transport, [deep]))


async def test_unknown_check_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown check\(s\) nope; known: fan_out"):
        await check_transport(MemoryTransport, checks=["nope"])
