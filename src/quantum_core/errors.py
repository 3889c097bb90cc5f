"""The exceptions quantum_core raises, so callers catch ours and never a broker library's."""

from __future__ import annotations

__all__ = [
    "EventBusError",
    "MalformedEventError",
    "QuantumCoreError",
    "TransportError",
]


class QuantumCoreError(Exception):
    """Base of every error quantum_core raises on purpose."""


class EventBusError(QuantumCoreError):
    """Something went wrong publishing or consuming events."""


class TransportError(EventBusError):
    """The transport (broker connection) failed; the message says which and why."""


class MalformedEventError(EventBusError, ValueError):
    """Bytes read from a transport are not a quantum_core event envelope we can read."""
