"""App: one service's bus, policy store and health checker, started and stopped in order.

What every service's ``main()`` did by hand, once: ``quantum-core run pkg.module:app`` starts
an App, logs one ready line and stops it on SIGTERM or SIGINT (``cli/_run.py``), and
``quantum-core asyncapi pkg.module:app`` describes it (``asyncapi.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from .bus import EventBus
from .health import HealthChecker
from .logs import get_logger
from .policy import PolicyStore

__all__ = ["App", "Hook", "as_app"]

Hook = Callable[[], Awaitable[Any]]
"""An ``async def`` function without arguments, run at start or stop."""

_log = get_logger("quantum_core.app")


class App:
    """A service: its EventBus, and optionally its PolicyStore and HealthChecker.

    ``start()`` checks the broker answers, loads the policy, runs the ``on_startup`` hooks,
    then starts consuming: a handler never runs before what it reads is there. ``stop()``
    goes the other way: the bus stops taking events and drains the handlers in flight
    (within its ``stop_timeout``), then the ``on_shutdown`` hooks run, then the policy store
    and the health checker close. Each part is stopped even when an earlier one fails.

    Args:
        bus: The service's EventBus; its ``service_name`` names the app.
        policy_store: Loaded at start, closed at stop; announces its changes on ``bus``
            unless it has a bus already.
        health: Closed at stop.
        title: The AsyncAPI document's title; the service name by default.
        version: The AsyncAPI document's ``info.version``.

    Example:
        >>> bus = EventBus("memory://", service_name="risk")
        >>> app = App(bus)
        >>> @bus.subscriber("ai.signal.generated")
        ... async def on_signal(payload: dict) -> None: ...
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        policy_store: PolicyStore | None = None,
        health: HealthChecker | None = None,
        title: str | None = None,
        version: str = "1.0.0",
    ) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"App(bus) takes an EventBus, got {type(bus).__name__}")
        self.bus = bus
        self.policy_store = policy_store
        self.health = health
        self.title = title or bus.service_name
        self.version = version
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._started = False

    @property
    def service_name(self) -> str:
        """The bus's service name."""
        return self.bus.service_name

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` at start, after the policy loads and before events flow (a decorator)."""
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at stop, after the bus drained (a decorator)."""
        self._shutdown.append(hook)
        return hook

    async def start(self) -> None:
        """Check the broker, load the policy, run the startup hooks, start consuming.

        Raises:
            TransportError: the broker does not answer; nothing was started.
            PolicyUnavailableError: the policy cannot be loaded.
        """
        await self.bus.initialize()
        try:
            await self.bus.ping()
            if self.policy_store is not None:
                if self.policy_store.event_bus is None:
                    self.policy_store.event_bus = self.bus
                await self.policy_store.initialize()
            for hook in self._startup:
                await hook()
            await self.bus.start()
        except BaseException:
            await self._close()
            raise
        self._started = True

    async def stop(self) -> None:
        """Stop taking events, drain the handlers in flight, run the hooks, close the rest."""
        started, self._started = self._started, False
        try:
            await self.bus.stop()
        finally:
            try:
                if started:
                    for hook in self._shutdown:
                        try:
                            await hook()
                        except Exception:
                            _log.exception("app_shutdown_hook_failed", hook=repr(hook))
            finally:
                await self._close()

    async def _close(self) -> None:
        try:
            await self.bus.stop()
        finally:
            try:
                if self.policy_store is not None:
                    await self.policy_store.close()
            finally:
                if self.health is not None:
                    await self.health.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<App {self.service_name!r} bus={self.bus!r}>"


def as_app(target: object) -> App:
    """An App as given, or one around a plain EventBus.

    Raises:
        TypeError: ``target`` is neither.
    """
    if isinstance(target, App):
        return target
    if isinstance(target, EventBus):
        return App(target)
    raise TypeError(f"expected an App or an EventBus, got {type(target).__name__}")
