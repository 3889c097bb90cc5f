"""The event bus: semantics the same on every broker, and the interface a broker implements.

The transports live in :mod:`quantum_core.transports`; this package imports none of them.
``MemoryTransport`` and ``RedisStreamsTransport`` are still importable from here, as before,
loaded on first use.
"""

import importlib
from typing import Any

from ._retry import HandlerTimeoutError
from .bus import EventBus, EventHandler
from .context import EventInfo, current_event
from .dead_letters import DeadLetter
from .registry import register_transport, transport_from_url
from .stats import SubscriptionStats
from .transport import Backlog, Delivery, Subscription, Transport

__all__ = [
    "Backlog",
    "DeadLetter",
    "Delivery",
    "EventBus",
    "EventHandler",
    "EventInfo",
    "HandlerTimeoutError",
    "MemoryTransport",
    "RedisStreamsTransport",
    "Subscription",
    "SubscriptionStats",
    "Transport",
    "current_event",
    "register_transport",
    "transport_from_url",
]

# Transports this package exported before they moved to their own packages.
_MOVED = {
    "MemoryTransport": "quantum_core.transports.memory",
    "RedisStreamsTransport": "quantum_core.transports.redis",
}


def __getattr__(name: str) -> Any:
    """Import a transport that moved to :mod:`quantum_core.transports` when asked for."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'quantum_core.bus' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
