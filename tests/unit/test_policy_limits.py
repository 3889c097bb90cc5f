"""Writes check limits as strictly as reads: no bool, no string, no float where an int goes.

A stored policy is read strictly (``decode_policy``); a write that coerced ``True`` to 1.0 or
``"5"`` to 5.0 would store what its caller did not mean, so writes refuse the same inputs,
naming the limit and the type it expects.
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_core import MemoryPolicyBackend, PolicyStore
from quantum_core.models import RiskConfig, RiskMode
from quantum_core.policy import PolicyValidationError

INTEGER_LIMITS = {"max_open_positions"}
NUMBER_LIMITS = set(RiskConfig.model_fields) - INTEGER_LIMITS


@pytest.mark.parametrize(
    ("limit", "value", "expected"),
    [
        ("max_leverage", True, "must be a number (int or float), got bool"),
        ("max_leverage", "5", "must be a number (int or float), got str"),
        ("max_leverage", None, "must be a number (int or float), got NoneType"),
        ("global_min_confidence", False, "must be a number (int or float), got bool"),
        ("max_open_positions", 3.0, "must be an integer (int), got float"),
        ("max_open_positions", True, "must be an integer (int), got bool"),
        ("max_open_positions", "3", "must be an integer (int), got str"),
    ],
)
async def test_a_limit_of_the_wrong_type_is_refused_naming_the_limit_and_the_type(
    limit, value, expected
):
    backend = MemoryPolicyBackend()
    async with PolicyStore(backend) as store:
        before = await backend.load()
        with pytest.raises(PolicyValidationError) as info:
            await store.update_config("NORMAL", updated_by="desk", **{limit: value})
        assert [(v.field, v.rule, v.value) for v in info.value.violations] == [
            (f"NORMAL.{limit}", expected, value)
        ]
        assert f"NORMAL.{limit}={value!r}: {expected}" in str(info.value)
        assert await backend.load() is before


async def test_an_int_is_a_fine_number_and_is_stored_as_a_float():
    async with PolicyStore() as store:
        policy = await store.update_config("NORMAL", updated_by="desk", max_leverage=5)
    assert policy.configs[RiskMode.NORMAL].max_leverage == 5.0
    assert type(policy.configs[RiskMode.NORMAL].max_leverage) is float


anything = (
    st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats()
    | st.text(max_size=5)
    | st.none()
    | st.lists(st.integers(), max_size=2)
)


@settings(max_examples=300, deadline=None)
@given(limit=st.sampled_from(sorted(RiskConfig.model_fields)), value=anything)
async def test_a_write_stores_exactly_what_was_given_or_names_the_limit(limit, value):
    integer = limit in INTEGER_LIMITS
    right_type = type(value) is int if integer else type(value) in (int, float)
    backend = MemoryPolicyBackend()
    async with PolicyStore(backend) as store:
        before = await backend.load()
        if not right_type:  # a bool, a string, None, a list, a float for an integer...
            with pytest.raises(PolicyValidationError) as info:
                await store.update_config("AGGRESSIVE", updated_by="desk", **{limit: value})
            expected = "an integer (int)" if integer else "a number (int or float)"
            assert [(v.field, v.rule) for v in info.value.violations] == [
                (f"AGGRESSIVE.{limit}", f"must be {expected}, got {type(value).__name__}")
            ]
            assert await backend.load() is before
            return
        refused = None
        try:
            policy = await store.update_config("AGGRESSIVE", updated_by="desk", **{limit: value})
        except PolicyValidationError as error:  # its range, or the order of the modes
            refused = error
    if refused is not None:
        assert {v.field for v in refused.violations} == {f"AGGRESSIVE.{limit}"}
        assert "must be a number" not in str(refused)
        assert "must be an integer" not in str(refused)
        assert await backend.load() is before
        return
    written = getattr(policy.configs[RiskMode.AGGRESSIVE], limit)
    assert written == value
    assert type(written) is (int if integer else float)
    assert not math.isnan(written)
    assert await backend.load() == policy
