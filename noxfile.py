"""The supported versions, tested: every Python with each end of the redis-py range.

Python 3.11, 3.12 and 3.13, each with the lowest and the highest redis-py supported
(pyproject's ``redis>=5.3,<9``; quantum_core._redis.TESTED_REDIS_PY names the releases whose
private parser the Redis transport subclasses). Each combination runs the unit suite, the
contract suite on every transport and the Redis transport's own tests. ``make test-matrix``
starts the services and runs every session; .ci/run calls it: CI runs the whole matrix.
redis-py is the one runtime dependency whose private behaviour quantum_core relies on; the
others are used through their public API only.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True  # a matrix that skips a Python proves nothing

PYTHONS = ["3.11", "3.12", "3.13"]
REDIS_PY = {"lowest": "5.3.0", "highest": "8.2.0"}

TEST_TOOLS = [
    "pytest>=8.0",
    "pytest-asyncio>=0.24",
    "pytest-xdist>=3.5",
    "hypothesis>=6.100",
    "opentelemetry-sdk>=1.27",  # the unit tests of the spans read them from the SDK
    "jsonschema>=4.18",  # the AsyncAPI document is validated against the official schema
    "pyyaml>=6",  # quantum-core asyncapi --yaml
]
# The contract suite runs on every transport (the brokers' clients); the unit suite covers
# the spans and metrics (otel, prometheus).
EXTRAS = ".[nats,rabbitmq,kafka,otel,prometheus]"
# The Redis transport's own tests (its reply parser, its consumer path, a server restart and
# loss, a Redis Cluster).
REDIS_TESTS = sorted(
    str(path)
    for pattern in (
        "tests/integration/test_bus_redis*.py",
        "tests/unit/test_redis_replies.py",
        "tests/unit/test_bus_consumer_path.py",
        "tests/faults/test_server_restart.py",
        "tests/faults/test_server_loss.py",
        "tests/faults/test_outage_logging.py",
        "tests/faults/test_redis_cluster_faults.py",
        "tests/integration/test_redis_cluster_ops.py",
        "tests/integration/test_policy_redis_cluster.py",
    )
    for path in Path().glob(pattern)
)
SUITES = [
    "tests/unit",
    "tests/contract",
    *(t for t in REDIS_TESTS if not t.startswith("tests/unit")),
]


@nox.session(python=PYTHONS)
@nox.parametrize("redis_py", list(REDIS_PY.values()), ids=list(REDIS_PY))
def tests(session: nox.Session, redis_py: str) -> None:
    """The unit, contract and Redis suites on one Python with one end of the redis-py range."""
    session.install("-e", EXTRAS, f"redis=={redis_py}", *TEST_TOOLS)
    versions = "import redis, sys; print('redis-py', redis.__version__, 'on', sys.version)"
    session.run("python", "-c", versions)
    options = ["-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile"]
    session.run("pytest", *options, *(session.posargs or SUITES))
