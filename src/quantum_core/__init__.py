"""quantum_core: the event bus, risk policy, health and logging core of a trading backend.

Everything public is importable from here; the modules behind it are internal. The
transports whose broker library is optional (``NatsJetStreamTransport``,
``RabbitMQTransport``, ``KafkaTransport``) and the PostgreSQL ``Outbox`` load on first
use, so ``import quantum_core`` needs only the core dependencies and loads no database driver.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .bus import (
    Backlog,
    DeadLetter,
    Delivery,
    EventBus,
    EventHandler,
    EventInfo,
    HandlerTimeoutError,
    Subscription,
    SubscriptionStats,
    Transport,
    current_event,
    register_transport,
    transport_from_url,
)
from .errors import (
    DeliveryGoneError,
    EventBusError,
    MalformedEventError,
    QuantumCoreError,
    TransportError,
)
from .health import (
    CheckResult,
    HealthChecker,
    HealthReport,
    HealthStatus,
    get_health_checker,
    initialize_health_checker,
    shutdown_health_checker,
)
from .logs import Logger, TradingLogger, configure_logging, get_logger
from .observability import configure_metrics, configure_tracing
from .policy import (
    MemoryPolicyBackend,
    PolicyBackend,
    PolicyChange,
    PolicyConflictError,
    PolicyDataError,
    PolicyError,
    PolicyStore,
    PolicyUnavailableError,
    PolicyValidationError,
    PolicyViolation,
    PolicyWatch,
    RedisPolicyBackend,
)
from .runtime import (
    get_event_bus,
    get_policy_store,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)
from .tracing import TraceContext, trace_context
from .transports.memory import MemoryTransport
from .transports.redis import RedisStreamsTransport

if TYPE_CHECKING:
    from .outbox import Outbox
    from .transports.kafka import KafkaTransport
    from .transports.nats import NatsJetStreamTransport
    from .transports.rabbitmq import RabbitMQTransport

_LAZY = {
    "KafkaTransport": ".transports.kafka",
    "Outbox": ".outbox",
    "NatsJetStreamTransport": ".transports.nats",
    "RabbitMQTransport": ".transports.rabbitmq",
}

__all__ = [
    "Backlog",
    "CheckResult",
    "DeadLetter",
    "Delivery",
    "DeliveryGoneError",
    "EventBus",
    "EventBusError",
    "EventHandler",
    "EventInfo",
    "HandlerTimeoutError",
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "KafkaTransport",
    "Logger",
    "MalformedEventError",
    "MemoryPolicyBackend",
    "MemoryTransport",
    "NatsJetStreamTransport",
    "Outbox",
    "PolicyBackend",
    "PolicyChange",
    "PolicyConflictError",
    "PolicyDataError",
    "PolicyError",
    "PolicyStore",
    "PolicyUnavailableError",
    "PolicyValidationError",
    "PolicyViolation",
    "PolicyWatch",
    "QuantumCoreError",
    "RabbitMQTransport",
    "RedisPolicyBackend",
    "RedisStreamsTransport",
    "Subscription",
    "SubscriptionStats",
    "TraceContext",
    "TradingLogger",
    "Transport",
    "TransportError",
    "__version__",
    "configure_logging",
    "configure_metrics",
    "configure_tracing",
    "current_event",
    "get_event_bus",
    "get_health_checker",
    "get_logger",
    "get_policy_store",
    "initialize_event_bus",
    "initialize_health_checker",
    "initialize_policy_store",
    "register_transport",
    "shutdown_event_bus",
    "shutdown_health_checker",
    "shutdown_policy_store",
    "trace_context",
    "transport_from_url",
]


def __getattr__(name: str) -> Any:
    """Import an optional transport's module (or the outbox's) when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'quantum_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
