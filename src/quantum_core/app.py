"""App: one service's bus, policy store and health checker, started and stopped in order.

What every service's ``main()`` did by hand, once: ``quantum-core run pkg.module:app`` starts
an App, logs one ready line and stops it on SIGTERM or SIGINT (``cli/_run.py``), and
``quantum-core asyncapi pkg.module:app`` describes it (``asyncapi.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from ._checks import check_name
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
    starts consuming, then runs the ``after_startup`` hooks: a handler never runs before
    what it reads is there. ``stop()`` goes the other way: the ``on_shutdown`` hooks (stop
    what publishes), the bus stops taking events and drains the handlers in flight (within
    its ``stop_timeout``), the ``after_shutdown`` hooks, then the policy store and the
    health checker close. Each part is stopped even when an earlier one fails.

    Args:
        bus: The service's EventBus.
        policy_store: Loaded at start, closed at stop; announces its changes on ``bus``
            unless it has a bus already.
        health: Closed at stop.
        name: The app in log lines (``quantum-core run``) and the AsyncAPI document's title;
            the bus's ``service_name`` by default. Replicas of one consumer group (one
            service name) may run as apps of different names, such as one per role.
        version: The AsyncAPI document's ``info.version``.

    Examples:
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
        name: str | None = None,
        version: str = "1.0.0",
    ) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"App(bus) takes an EventBus, got {type(bus).__name__}")
        self.bus = bus
        self.policy_store = policy_store
        self.health = health
        self.name = check_name("name", bus.service_name if name is None else name)
        self.version = version
        self._hooks: dict[str, list[Hook]] = {
            "on_startup": [],
            "after_startup": [],
            "on_shutdown": [],
            "after_shutdown": [],
        }
        self._started = False

    @property
    def service_name(self) -> str:
        """The bus's service name (its consumer groups are named after it)."""
        return self.bus.service_name

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` at start, after the policy loads, before events flow (a decorator)."""
        self._hooks["on_startup"].append(hook)
        return hook

    def after_startup(self, hook: Hook) -> Hook:
        """Run ``hook`` once the bus consumes: every subscription's group exists (a decorator)."""
        self._hooks["after_startup"].append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at stop, before the bus stops: stop what publishes (a decorator)."""
        self._hooks["on_shutdown"].append(hook)
        return hook

    def after_shutdown(self, hook: Hook) -> Hook:
        """Run ``hook`` at stop, once the bus drained: close what handlers used (a decorator)."""
        self._hooks["after_shutdown"].append(hook)
        return hook

    async def start(self) -> None:
        """Check the broker, load the policy, run the startup hooks, start consuming.

        Raises:
            TransportError: the broker does not answer; nothing was started.
        """
        await self.bus.initialize()
        try:
            await self.bus.ping()
            if self.policy_store is not None:
                if self.policy_store.event_bus is None:
                    self.policy_store.event_bus = self.bus
                await self.policy_store.initialize()
            for hook in self._hooks["on_startup"]:
                await hook()
            await self.bus.start()
            self._started = True
            for hook in self._hooks["after_startup"]:
                await hook()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Run the shutdown hooks, drain the bus, run the after-shutdown hooks, close the rest."""
        started, self._started = self._started, False
        try:
            if started:
                await self._run_hooks("on_shutdown")
            await self.bus.stop()
            if started:
                await self._run_hooks("after_shutdown")
        finally:
            await self._close()

    async def _run_hooks(self, stage: str) -> None:
        for hook in self._hooks[stage]:
            try:
                await hook()
            except Exception:  # the rest of the shutdown goes on
                _log.exception("app_hook_failed", app=self.name, stage=stage, hook=repr(hook))

    async def _close(self) -> None:
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
        return f"<App {self.name!r} bus={self.bus!r}>"


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
