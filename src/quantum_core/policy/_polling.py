"""The periodic check every watch keeps: a call every ``interval`` seconds, until cancelled.

Shared by the default watch of :class:`~quantum_core.policy.PolicyBackend` (polling is all it
has) and the Redis watch (a safety net under pub/sub, for a notification lost in a
reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["call_every"]


async def call_every(interval: float, on_change: Callable[[], None]) -> None:
    """Call ``on_change()`` every ``interval`` seconds; run it as a task and cancel it."""
    while True:
        await asyncio.sleep(interval)
        on_change()
