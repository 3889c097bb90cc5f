"""Helpers for testing code built on quantum_core, and the transport contract suite.

``check_transport(make_transport)`` proves that a transport honours the contract the EventBus
relies on (see trio's ``check_two_way_stream`` and Watermill's shared pub/sub tests). Our own
test suite runs it on every transport; run it on yours too.
"""

from .contract import (
    CHECKS,
    EventRecorder,
    MakeTransport,
    TransportFeatures,
    check_payload_round_trip,
    check_transport,
)

__all__ = [
    "CHECKS",
    "EventRecorder",
    "MakeTransport",
    "TransportFeatures",
    "check_payload_round_trip",
    "check_transport",
]
