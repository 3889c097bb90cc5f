"""Process-wide instances, as the guide wires them: ``initialize_*`` once, ``get_*`` anywhere.

Domain classes call ``get_event_bus()`` and ``get_policy_store()`` instead of receiving them,
so they can be moved between processes without changing their constructors.
"""

from __future__ import annotations

from typing import Any

from .bus import EventBus, Transport
from .policy import PolicyBackend, PolicyStore

__all__ = [
    "get_event_bus",
    "get_policy_store",
    "initialize_event_bus",
    "initialize_policy_store",
    "shutdown_event_bus",
    "shutdown_policy_store",
]

_event_bus: EventBus | None = None
_policy_store: PolicyStore | None = None


async def initialize_event_bus(
    transport: Transport | str = "memory://", *, service_name: str, **options: Any
) -> EventBus:
    """Create the process-wide EventBus, ready to publish; subscribe, then ``await start()``.

    Args:
        transport: A transport or URL; the in-memory transport by default.
        service_name: This service's name; replicas share it.
        **options: Passed to :class:`EventBus` (``read_count``, ``concurrency``...).

    Raises:
        RuntimeError: if one is already initialized (call ``shutdown_event_bus()`` first).
    """
    global _event_bus
    if _event_bus is not None:
        raise RuntimeError(
            "the EventBus is already initialized; call `await shutdown_event_bus()` first"
        )
    bus = EventBus(transport, service_name=service_name, **options)
    await bus.initialize()
    _event_bus = bus
    if _policy_store is not None and _policy_store.event_bus is None:
        _policy_store.event_bus = bus
    return bus


def get_event_bus() -> EventBus:
    """Return the process-wide EventBus.

    Raises:
        RuntimeError: before ``initialize_event_bus()``.
    """
    if _event_bus is None:
        raise RuntimeError(
            "the EventBus is not initialized: call "
            "`await initialize_event_bus(transport, service_name=...)` first"
        )
    return _event_bus


async def shutdown_event_bus() -> None:
    """Stop and forget the process-wide EventBus; harmless when there is none."""
    global _event_bus
    bus, _event_bus = _event_bus, None
    if bus is None:
        return
    if _policy_store is not None and _policy_store.event_bus is bus:
        _policy_store.event_bus = None
    await bus.stop()


async def initialize_policy_store(
    backend: PolicyBackend | None = None, **options: Any
) -> PolicyStore:
    """Create and load the process-wide PolicyStore (in memory by default).

    The process-wide EventBus, once initialized, announces its changes.

    Raises:
        RuntimeError: if one is already initialized (call ``shutdown_policy_store()`` first).
    """
    global _policy_store
    if _policy_store is not None:
        raise RuntimeError(
            "the PolicyStore is already initialized; call `await shutdown_policy_store()` first"
        )
    store = PolicyStore(backend, **options)
    if store.event_bus is None:
        store.event_bus = _event_bus
    await store.initialize()
    _policy_store = store
    return store


def get_policy_store() -> PolicyStore:
    """Return the process-wide PolicyStore.

    Raises:
        RuntimeError: before ``initialize_policy_store()``.
    """
    if _policy_store is None:
        raise RuntimeError(
            "the PolicyStore is not initialized: call `await initialize_policy_store()` first"
        )
    return _policy_store


async def shutdown_policy_store() -> None:
    """Close and forget the process-wide PolicyStore; harmless when there is none."""
    global _policy_store
    store, _policy_store = _policy_store, None
    if store is not None:
        await store.close()
