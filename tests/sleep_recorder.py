"""See which waits a retry loop chose, without waiting them: for tests of backoff wiring.

``record_waits(monkeypatch, "_listen")`` replaces ``asyncio.sleep`` for the test: a wait
asked for by a coroutine function of one of the given names is recorded and skipped (the
loop goes on at once); every other wait is real. With ``random.uniform`` pinned, the
shared jittered backoff is deterministic, so a test can compare the recorded waits with
what :func:`quantum_core._backoff.backoff` says.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import defaultdict
from typing import Any

import pytest


def record_waits(
    monkeypatch: pytest.MonkeyPatch, *callers: str, pin_jitter: bool = True
) -> dict[str, list[float]]:
    """Record (and skip) the waits of ``callers``; pin the jitter to its shortest wait.

    With ``pin_jitter=False`` the waits stay random: to see that two loops differ.
    """
    real_sleep = asyncio.sleep
    waits: dict[str, list[float]] = defaultdict(list)

    async def sleep(delay: float, result: Any = None) -> Any:
        caller = sys._getframe(1).f_code.co_name
        if caller in callers:
            waits[caller].append(delay)
            return await real_sleep(0, result)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    if pin_jitter:
        monkeypatch.setattr(random, "uniform", lambda low, high: low)
    return waits
