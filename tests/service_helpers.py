"""The one rule for real services in tests: skip on a workstation, fail under CI=true.

CI must run every test against every service; a developer without one still gets a run.
The shared servers are where the pytest plugin looks for them (quantum_core.testing.brokers):
QUANTUM_CORE_TEST_REDIS_URL, QUANTUM_CORE_TEST_NATS_URL, QUANTUM_CORE_TEST_AMQP_URL, else
their default port on loopback.
"""

from __future__ import annotations

import functools
import socket
from typing import NoReturn

from quantum_core.testing.brokers import BROKERS, skip_or_fail

REDIS_URL = BROKERS["redis"].base_url
NATS_URL = BROKERS["nats"].base_url
AMQP_URL = BROKERS["amqp"].base_url
KAFKA_URL = BROKERS["kafka"].base_url


def service_missing(what: str, why: object = "not reachable") -> NoReturn:
    """Fail when CI is set, else skip, saying which service is missing and why."""
    skip_or_fail(f"{what} is not available ({why}); `make test` starts it where it can")


def require(scheme: str) -> str:
    """The shared server of a transport (``redis``, ``nats``, ``amqp``), or skip/fail saying why."""
    reason = _why_not(scheme)
    if reason is not None:
        skip_or_fail(f"{reason}; `make test` starts it where it can")
    return BROKERS[scheme].base_url


@functools.cache
def _why_not(scheme: str) -> str | None:
    """Asked once a session, as the plugin does: the shared servers do not come and go."""
    return BROKERS[scheme].unavailable()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for a server of the test's own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
