"""The exceptions quantum_core raises, so callers catch ours and never a broker library's."""

from __future__ import annotations

__all__ = [
    "DeliveryGoneError",
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


class DeliveryGoneError(TransportError):
    """A delivery is no longer this consumer's: trying its ack or dead letter again is pointless.

    Its channel closed, the transport handed it back, or another consumer of the group took
    it over; the broker delivers it again (to this consumer or another one). A transport
    raises it from ``Subscription.ack`` (when every delivery that failed is gone) or
    ``Subscription.dead_letter`` (nothing was stored), so the bus stops retrying.
    """


class MalformedEventError(EventBusError, ValueError):
    """Bytes read from a transport are not a quantum_core event envelope we can read."""
