"""Process-wide instances, as the guide wires them: ``initialize_*`` once, ``get_*`` anywhere.

Domain classes call ``get_event_bus()`` and ``get_policy_store()`` instead of receiving them,
so they can be moved between processes without changing their constructors.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from .bus import EventBus, Transport
from .policy import (
    DEFAULT_KEY_PREFIX,
    MemoryPolicyBackend,
    PolicyBackend,
    PolicyStore,
    RedisPolicyBackend,
    default_snapshot_path,
)

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
    transport: Transport | redis.Redis | str = "memory://", *, service_name: str, **options: Any
) -> EventBus:
    """Create the process-wide EventBus, ready to publish; subscribe, then ``await start()``.

    Args:
        transport: A transport, a ``redis.asyncio.Redis`` client (as in the guide) or a URL;
            the in-memory transport by default.
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
    backend: PolicyBackend | redis.Redis | RedisCluster | str | None = None,
    *,
    key_prefix: str | None = None,
    snapshot_path: str | os.PathLike[str] | Literal["auto"] | None = "auto",
    **options: Any,
) -> PolicyStore:
    """Create and load the process-wide PolicyStore, and start following changes.

    The process-wide EventBus, whether initialized before or after, announces its changes.

    Args:
        backend: A ``redis.asyncio.Redis`` client (as in the guide), a ``redis://`` URL, a
            :class:`PolicyBackend`, or None (or ``"memory://"``) for this process's memory.
        key_prefix: With Redis, the namespace of the policy's keys; processes that share it
            share one policy. Defaults to ``quantum_core:policy``.
        snapshot_path: The JSON file read at a start without Redis. ``"auto"``: with Redis,
            one file per server and prefix in this user's state directory (see
            :func:`~quantum_core.policy.default_snapshot_path`); in memory, none. None: none.
        **options: Passed to :class:`PolicyStore` (``default``, ``event_bus``).

    Raises:
        RuntimeError: if one is already initialized (call ``shutdown_policy_store()`` first).
        TypeError: if ``backend`` is none of the above.
    """
    global _policy_store
    if _policy_store is not None:
        raise RuntimeError(
            "the PolicyStore is already initialized; call `await shutdown_policy_store()` first"
        )
    resolved = _policy_backend(backend, key_prefix)
    if snapshot_path == "auto":
        snapshot_path = (
            default_snapshot_path(resolved.key_prefix, resolved.address)
            if isinstance(resolved, RedisPolicyBackend)
            else None
        )
    store = PolicyStore(resolved, snapshot_path=snapshot_path, **options)
    if store.event_bus is None:
        store.event_bus = _event_bus
    try:
        await store.initialize()
    except BaseException:
        await store.close()
        raise
    _policy_store = store
    return store


def _policy_backend(
    backend: PolicyBackend | redis.Redis | RedisCluster | str | None, key_prefix: str | None
) -> PolicyBackend:
    if isinstance(backend, PolicyBackend | None) or backend == "memory://":
        if key_prefix is not None:
            raise ValueError(
                "key_prefix applies to a Redis client or URL; give the prefix to your own "
                "backend instead"
            )
        return backend if isinstance(backend, PolicyBackend) else MemoryPolicyBackend()
    if isinstance(backend, redis.Redis | RedisCluster | str):
        return RedisPolicyBackend(
            backend, key_prefix=DEFAULT_KEY_PREFIX if key_prefix is None else key_prefix
        )
    raise TypeError(
        "initialize_policy_store() takes a redis.asyncio.Redis client, a redis:// URL, a "
        f"PolicyBackend or nothing (memory), got {type(backend).__module__}."
        f"{type(backend).__name__}"
    )


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
