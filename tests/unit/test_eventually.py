"""quantum_core.testing.eventually: returns as soon as the condition holds, fails saying what."""

from __future__ import annotations

import asyncio

import pytest

from quantum_core.testing import eventually


async def test_returns_once_a_condition_holds_with_the_seconds_it_took():
    loop = asyncio.get_running_loop()
    ready_at = loop.time() + 0.05
    took = await eventually(lambda: loop.time() >= ready_at, "the clock", interval=0.005)
    assert 0.04 <= took < 1.0


async def test_an_async_condition_is_awaited():
    polls = []

    async def third_time_lucky():
        polls.append(1)
        return len(polls) == 3

    await eventually(third_time_lucky, interval=0.001)
    assert len(polls) == 3


async def test_a_condition_that_holds_already_costs_no_wait():
    assert await eventually(lambda: True, interval=10) < 0.5


async def test_the_deadline_fails_naming_what_was_waited_for():
    with pytest.raises(AssertionError, match=r"^not within 0\.05s: the order filled$"):
        await eventually(lambda: False, "the order filled", timeout=0.05)


async def test_a_timeout_of_the_condition_itself_is_its_own_error():
    async def broker_call():
        raise TimeoutError("the broker did not answer")

    with pytest.raises(TimeoutError, match="the broker did not answer"):
        await eventually(broker_call, timeout=5)
