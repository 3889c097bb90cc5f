"""One contract, every transport: the same checks on memory, Redis, NATS and RabbitMQ."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_core import MemoryTransport
from quantum_core.testing import (
    CHECKS,
    check_payload_round_trip,
    check_transport,
)

# Every test here runs on each transport through the pytest plugin's quantum_core_transport
# (its URL of the test's own namespace); transport_factory and transport_features are in
# tests/conftest.py.


@pytest.mark.parametrize("check", list(CHECKS))
async def test_contract(check, transport_factory, transport_features):
    await check_transport(transport_factory, features=transport_features, checks=[check])


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
def test_payloads_round_trip_unchanged(transport_factory, payloads):
    asyncio.run(check_payload_round_trip(transport_factory, payloads))


def test_deeply_nested_payload_round_trips(transport_factory):
    deep: dict = {"leaf": "ü€😀"}
    for depth in range(60):
        deep = {f"level{depth}": [deep]}
    asyncio.run(check_payload_round_trip(transport_factory, [deep]))


async def test_unknown_check_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown check\(s\) nope; known: fan_out"):
        await check_transport(MemoryTransport, checks=["nope"])
