"""quantum_core: the event bus, risk policy, health and logging core of a trading backend.

Everything public is importable from here; the modules behind it are internal.
"""

from ._version import __version__
from .bus import (
    Backlog,
    Delivery,
    EventBus,
    EventHandler,
    EventInfo,
    MemoryTransport,
    RedisStreamsTransport,
    Subscription,
    Transport,
    current_event,
    register_transport,
    transport_from_url,
)
from .errors import EventBusError, MalformedEventError, QuantumCoreError, TransportError
from .logs import Logger, TradingLogger, configure_logging, get_logger
from .policy import MemoryPolicyBackend, PolicyBackend, PolicyStore
from .runtime import (
    get_event_bus,
    get_policy_store,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)
from .tracing import TraceContext, trace_context

__all__ = [
    "Backlog",
    "Delivery",
    "EventBus",
    "EventBusError",
    "EventHandler",
    "EventInfo",
    "Logger",
    "MalformedEventError",
    "MemoryPolicyBackend",
    "MemoryTransport",
    "PolicyBackend",
    "PolicyStore",
    "QuantumCoreError",
    "RedisStreamsTransport",
    "Subscription",
    "TraceContext",
    "TradingLogger",
    "Transport",
    "TransportError",
    "__version__",
    "configure_logging",
    "current_event",
    "get_event_bus",
    "get_logger",
    "get_policy_store",
    "initialize_event_bus",
    "initialize_policy_store",
    "register_transport",
    "shutdown_event_bus",
    "shutdown_policy_store",
    "trace_context",
    "transport_from_url",
]
