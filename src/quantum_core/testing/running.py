"""running(): start apps (or buses) on the memory transport, and await until they settle.

Why: a test that publishes and then sleeps "long enough" to be sure nothing else arrives is
slow when the code is fast and flaky when the machine is busy. On the memory transport the
bus knows exactly what is left: ``settled()`` returns once every event published so far
(and every event their handlers published in turn) has been handled or dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from ..app import App, as_app
from ..bus import EventBus
from ..transports.memory import MemoryTransport

__all__ = ["RunningApps", "running"]

_POLL = 0.002  # seconds between two looks at the groups' backlogs: memory answers at once


class RunningApps:
    """What :func:`running` yields: the apps, their buses, and :meth:`settled`."""

    def __init__(self, apps: Sequence[App]) -> None:
        self.apps = tuple(apps)

    @property
    def bus(self) -> EventBus:
        """The first app's bus: the one a test usually publishes on."""
        return self.apps[0].bus

    async def settled(self, timeout: float = 5.0) -> None:
        """Return once no subscription of these apps has an event left to handle.

        An event counts as left until its handler returned (and it was acknowledged) or it
        was dead-lettered; one waiting for a retry is left too. Events that handlers publish
        while the wait goes on are waited for as well.

        Raises:
            AssertionError: not settled within ``timeout`` seconds; says what is left.
        """
        left: dict[str, object] = {}
        try:
            async with asyncio.timeout(timeout):
                while True:
                    left = await self._left()
                    if not left:
                        return
                    await asyncio.sleep(_POLL)
        except TimeoutError:
            raise AssertionError(
                f"not settled within {timeout}s: events left per subscription {left}"
            ) from None

    async def _left(self) -> dict[str, object]:
        left: dict[str, object] = {}
        for app in self.apps:
            for name, backlog in (await app.bus.backlog()).items():
                if backlog.pending or backlog.lag:
                    left[f"{app.service_name}: {name}"] = backlog
        return left


@contextlib.asynccontextmanager
async def running(*targets: App | EventBus) -> AsyncIterator[RunningApps]:
    """Start each App (or EventBus) in order, yield them, stop them in reverse at the end.

    Every one must be on the memory transport (``"memory://"``, or a shared
    ``MemoryTransport``), where what is left can be counted exactly.

    Raises:
        TypeError: a target is not an App or EventBus, or not on the memory transport.
    """
    apps = [as_app(target) for target in targets]
    if not apps:
        raise TypeError("running() takes at least one App or EventBus")
    for app in apps:
        if not isinstance(app.bus.transport, MemoryTransport):
            raise TypeError(
                f"running() needs the memory transport; {app.service_name!r} is on "
                f"{type(app.bus.transport).__name__}: create its bus with 'memory://' (or a "
                "shared MemoryTransport) in tests"
            )
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await app.start()
            stack.push_async_callback(app.stop)
        yield RunningApps(apps)
