"""The one rule for real services in tests: skip on a workstation, fail under CI=true.

CI must run every test against every service; a developer without one still gets a run.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

REDIS_URL = os.environ.get("QUANTUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def service_missing(what: str, why: object = "not reachable") -> NoReturn:
    """Fail when CI is set, else skip, saying which service is missing and why."""
    message = f"{what} is not available ({why}); `make test` starts it where it can"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI={os.environ['CI']!r} requires it")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for a server of the test's own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
