"""eventually(): wait for a condition with a deadline, instead of sleeping and hoping.

Why: a test that sleeps "long enough" is slow when the thing is fast and flaky when the
machine is busy. Where nothing can be awaited (a handler's side effect in a database, a
broker's counters), polling with a deadline is the next best thing: it returns as soon as
the condition holds and fails saying what it waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str = "the condition",
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> float:
    """Poll ``condition`` until it is true; return the seconds that took.

    Args:
        condition: A function, or an async function, that says whether the wait is over.
        what: What is waited for, for the failure message.
        timeout: Seconds after which the wait fails.
        interval: Seconds between two polls.

    Raises:
        AssertionError: ``not within {timeout}s: {what}`` when the deadline passed.
    """
    start = time.monotonic()
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return time.monotonic() - start
                await asyncio.sleep(interval)
    except TimeoutError:
        if not deadline.expired():  # the condition's own timeout: its error, not ours
            raise
        raise AssertionError(f"not within {timeout}s: {what}") from None
