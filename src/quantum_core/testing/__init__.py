"""Helpers for testing code built on quantum_core, and the transport contract suite.

``check_transport(make_transport)`` proves that a transport honours the contract the EventBus
relies on (see trio's ``check_two_way_stream`` and Watermill's shared pub/sub tests). Our own
test suite runs it on every transport; run it on yours too. ``EventRecorder``,
``capture_logs``, ``eventually`` and ``running`` (apps on memory, awaited until settled)
are for tests of code built on the bus; the pytest plugin gives them the
``quantum_core_transport`` fixture (docs/testing.md).
"""

# recorder.py: EventRecorder; harness.py: what every check is given (the harness,
# TransportFeatures); contract.py: the common contract, CHECKS, check_transport; faults.py:
# the checks of fault tolerance; log_capture.py: capture_logs; waiting.py: eventually;
# running.py: running (RunningApps.settled); brokers.py: the servers the pytest plugin
# (src/_quantum_core_pytestplugin.py) runs tests on.
# `import quantum_core` does not import this package.
from .contract import CHECKS, check_payload_round_trip, check_transport
from .harness import MakeTransport, TransportFeatures
from .log_capture import capture_logs
from .recorder import EventRecorder
from .running import RunningApps, running
from .waiting import eventually

__all__ = [
    "CHECKS",
    "EventRecorder",
    "MakeTransport",
    "RunningApps",
    "TransportFeatures",
    "capture_logs",
    "check_payload_round_trip",
    "check_transport",
    "eventually",
    "running",
]
