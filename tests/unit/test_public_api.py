"""The public API is a contract: a rename is a decision, not an accident."""

import subprocess
import sys

import quantum_core

EXPECTED = {
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
    "Logger",
    "MalformedEventError",
    "MemoryPolicyBackend",
    "MemoryTransport",
    "NatsJetStreamTransport",
    "Outbox",  # issue 21: the transactional outbox (loaded on first use, like NATS)
    "RabbitMQTransport",
    "KafkaTransport",
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
}


def test_all_is_pinned():
    assert set(quantum_core.__all__) == EXPECTED
    assert len(quantum_core.__all__) == len(EXPECTED)


def test_every_name_in_all_exists():
    for name in quantum_core.__all__:
        assert getattr(quantum_core, name) is not None, name


def test_guide_imports_work():
    from quantum_core import (  # noqa: F401
        EventBus,
        PolicyStore,
        TradingLogger,
        configure_logging,
        get_event_bus,
        get_health_checker,
        get_logger,
        get_policy_store,
        initialize_event_bus,
        initialize_health_checker,
        initialize_policy_store,
        shutdown_event_bus,
        shutdown_policy_store,
        trace_context,
    )


def test_import_needs_only_the_core_dependencies():
    optional = ("pytest", "hypothesis", "mkdocs", "fastapi", "nats", "aio_pika", "faststream")
    code = (
        "import sys, quantum_core; "
        f"loaded = [m for m in {optional!r} if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_import_loads_no_database_driver_and_the_outbox_on_first_use():
    code = (
        "import sys, quantum_core; "
        "assert 'asyncpg' not in sys.modules and 'quantum_core.outbox' not in sys.modules; "
        "from quantum_core import Outbox; "
        "assert Outbox.__module__ == 'quantum_core.outbox.outbox'; "
        "assert 'asyncpg' not in sys.modules, 'a DSN alone must not load asyncpg'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
