"""An async handler that records the events it receives, for tests to assert on."""

from __future__ import annotations

import asyncio
from typing import Any

from ..bus import EventInfo, current_event
from ..tracing import trace_context

__all__ = ["EventRecorder"]


class EventRecorder:
    """An async handler that records what it receives, for assertions.

    Examples:
        >>> recorder = EventRecorder()
        >>> bus.subscribe("ai.signal.generated", recorder)
        >>> await recorder.wait_for(1)
    """

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.events: list[EventInfo] = []
        self.traces: list[str | None] = []
        self._changed = asyncio.Event()

    async def __call__(self, payload: dict[str, Any]) -> None:
        """Record one event."""
        info = current_event()
        self.payloads.append(payload)
        self.traces.append(trace_context.get())
        if info is not None:
            self.events.append(info)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events arrived; raise AssertionError after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.payloads) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"expected {count} events within {timeout}s, got {len(self.payloads)}"
            ) from None
        return self.payloads
