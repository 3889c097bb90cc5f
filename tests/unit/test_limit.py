"""The handler concurrency limit: never more holders than slots, none lost to cancellation."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_core.bus._limit import Limit


@settings(max_examples=60, deadline=None)
@given(
    slots=st.integers(1, 4),
    jobs=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=30),
)
def test_holders_never_exceed_the_slots_and_cancelled_waiters_lose_nothing(slots, jobs):
    async def run():
        limit = Limit(slots)
        holding = peak = 0
        order = []

        async def job(n, ticks):
            nonlocal holding, peak
            if not limit.take_now():
                await limit.take()
            try:
                holding += 1
                peak = max(peak, holding)
                order.append(n)
                for _ in range(ticks):
                    await asyncio.sleep(0)
            finally:
                holding -= 1
                limit.give()

        tasks = [asyncio.create_task(job(n, ticks)) for n, (ticks, _) in enumerate(jobs)]
        await asyncio.sleep(0)
        for task, (_, cancel) in zip(tasks, jobs, strict=True):
            if cancel:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # every slot came back: as many as there are can be taken at once again
        assert [limit.take_now() for _ in range(slots)] == [True] * slots
        assert not limit.take_now()
        return peak, order

    peak, order = asyncio.run(run())
    assert peak <= slots
    assert order == sorted(order)  # first come, first served


async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on():
    limit = Limit(1)
    assert limit.take_now()
    first = asyncio.create_task(limit.take())
    second = asyncio.create_task(limit.take())
    await asyncio.sleep(0)
    limit.give()  # hands the slot to ``first``...
    first.cancel()  # ...which is cancelled before it runs: ``second`` must get it
    await asyncio.wait_for(second, 1)
    assert first.cancelled()
    assert not limit.take_now()  # ``second`` holds the only slot
