"""Numbers and names given to the policy, health and transports are refused the same way.

One module checks them (``quantum_core._checks``), so ``timeout=True``, NaN, infinity or a
string get the same error from a policy backend, the health checker or the event bus.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_core import (
    HealthChecker,
    MemoryPolicyBackend,
    PolicyBackend,
    PolicyStore,
    RedisPolicyBackend,
)
from quantum_core.cli._common import UsageError, resolve_target
from quantum_core.health import BinanceRestCheck, SystemCheck
from quantum_core.transports.memory import MemoryTransport
from quantum_core.transports.nats import NatsJetStreamTransport
from quantum_core.transports.rabbitmq import RabbitMQTransport
from quantum_core.transports.redis import RedisStreamsTransport

URL = "redis://127.0.0.1:6379/0"  # nothing connects: the arguments are refused first
NOT_SECONDS = [True, math.nan, math.inf, "1", None, -1]
NOT_POSITIVE_SECONDS = [*NOT_SECONDS, 0]
NOT_COUNTS = [True, 0, -1, 1.5, "3", None]
NOT_NAMES = ["", "has space", "tab\there", "\x00", "x" * 101, 5, None]


def refused(message: str, value: object) -> str:
    return rf"^{re.escape(message)}, got {re.escape(repr(value))}$"


def positive_seconds(name: str, value: object) -> str:
    return refused(f"{name} must be a number of seconds > 0", value)


def seconds(name: str, value: object) -> str:
    return refused(f"{name} must be a number of seconds >= 0", value)


# -- policy --------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["timeout", "poll_interval"])
@pytest.mark.parametrize("value", NOT_POSITIVE_SECONDS)
def test_redis_policy_backend_seconds(option, value):
    with pytest.raises(ValueError, match=positive_seconds(option, value)):
        RedisPolicyBackend(URL, **{option: value})


@pytest.mark.parametrize("value", NOT_COUNTS)
@pytest.mark.parametrize(
    "backend", [MemoryPolicyBackend, lambda **kw: RedisPolicyBackend(URL, **kw)]
)
def test_policy_history_size(backend, value):
    with pytest.raises(
        ValueError, match=refused("history_size must be a whole number >= 1", value)
    ):
        backend(history_size=value)


@pytest.mark.parametrize("value", NOT_NAMES)
def test_redis_policy_key_prefix(value):
    message = (
        "key_prefix must be a non-empty string of at most 100 printable characters without spaces"
    )
    with pytest.raises(ValueError, match=refused(message, value)):
        RedisPolicyBackend(URL, key_prefix=value)


@pytest.mark.parametrize("value", NOT_POSITIVE_SECONDS)
async def test_a_polled_backend_s_poll_interval(value):
    class Polled(PolicyBackend):
        poll_interval = value

        async def load(self):
            return None

        async def save(self, policy, **kwargs):
            return True

    with pytest.raises(ValueError, match=positive_seconds("poll_interval", value)):
        await Polled().watch(lambda: None)


@pytest.mark.parametrize("value", [*NOT_COUNTS, 10_001])
async def test_history_limit(value):
    store = PolicyStore()
    message = (
        "limit must be at most 10000" if value == 10_001 else "limit must be a whole number >= 1"
    )
    with pytest.raises(ValueError, match=refused(message, value)):
        await store.history(limit=value)


# -- health --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_POSITIVE_SECONDS)
async def test_health_timeouts(value):
    with pytest.raises(ValueError, match=positive_seconds("default_timeout", value)):
        HealthChecker("svc", default_timeout=value, system=False)
    async with HealthChecker("svc", system=False) as checker:

        async def ok():
            return True

        checker.register("dep", ok)
        if value is None:  # None: the default timeout, or unchanged
            return
        with pytest.raises(ValueError, match=positive_seconds("timeout", value)):
            checker.register("other", ok, timeout=value)
        with pytest.raises(ValueError, match=positive_seconds("timeout", value)):
            checker.configure("dep", timeout=value)


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_health_cache_ttl(value):
    with pytest.raises(ValueError, match=seconds("cache_ttl", value)):
        HealthChecker("svc", cache_ttl=value, system=False)


@pytest.mark.parametrize("value", NOT_POSITIVE_SECONDS)
@pytest.mark.parametrize("option", ["request_timeout", "max_clock_skew"])
def test_exchange_check_positive_seconds(option, value):
    with pytest.raises(ValueError, match=positive_seconds(option, value)):
        BinanceRestCheck(**{option: value})


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_exchange_check_default_retry_after(value):
    with pytest.raises(ValueError, match=seconds("default_retry_after", value)):
        BinanceRestCheck(default_retry_after=value)


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_system_check_cpu_window(value):
    with pytest.raises(ValueError, match=seconds("cpu_window", value)):
        SystemCheck(cpu_window=value)


@pytest.mark.parametrize("value", NOT_NAMES)
def test_health_service_name_is_a_name_as_the_bus_s(value):
    with pytest.raises(ValueError, match=r"^service_name must be a non-empty string of at most"):
        HealthChecker(value, system=False)


# -- transports ----------------------------------------------------------------------------

TRANSPORTS = {
    "memory": lambda **kw: MemoryTransport(**kw),
    "redis": lambda **kw: RedisStreamsTransport(URL, **kw),
    "nats": lambda **kw: NatsJetStreamTransport("nats://127.0.0.1:4222", **kw),
    "rabbitmq": lambda **kw: RabbitMQTransport("amqp://127.0.0.1/", **kw),
}
COUNTS = [
    ("memory", "max_backlog"),
    ("redis", "maxlen"),
    ("redis", "dead_letter_maxlen"),
    ("nats", "maxlen"),
    ("nats", "max_ack_pending"),
    ("nats", "dead_letter_maxlen"),
    ("nats", "replicas"),
    ("nats", "max_outstanding_pings"),
    ("rabbitmq", "dead_letter_max"),
]
POSITIVE_SECONDS = [
    ("redis", "max_age"),
    ("redis", "claim_idle"),
    ("nats", "ack_wait"),
    ("nats", "max_age"),
    ("nats", "publish_timeout"),
    ("nats", "ping_interval"),
    ("rabbitmq", "history_max_age"),
    ("rabbitmq", "consumer_timeout"),
    ("rabbitmq", "publish_timeout"),
]


@pytest.mark.parametrize("value", [v for v in NOT_COUNTS if v is not None])
@pytest.mark.parametrize(("transport", "option"), COUNTS)
def test_transport_counts(transport, option, value):
    with pytest.raises(ValueError, match=refused(f"{option} must be a whole number >= 1", value)):
        TRANSPORTS[transport](**{option: value})


@pytest.mark.parametrize("value", [v for v in NOT_POSITIVE_SECONDS if v is not None])
@pytest.mark.parametrize(("transport", "option"), POSITIVE_SECONDS)
def test_transport_seconds(transport, option, value):
    with pytest.raises(ValueError, match=positive_seconds(option, value)):
        TRANSPORTS[transport](**{option: value})


@given(prefix=st.one_of(st.text(max_size=120), st.sampled_from(NOT_NAMES[:-1])))
def test_the_redis_transport_and_the_cli_take_the_same_prefixes(prefix):
    def takes(make):
        try:
            make()
        except (ValueError, UsageError):
            return False
        return True

    transport = takes(lambda: RedisStreamsTransport(URL, prefix=prefix))
    cli = takes(lambda: resolve_target(URL, prefix=prefix, policy_prefix="p", timeout=1.0))
    policy = takes(lambda: RedisPolicyBackend(URL, key_prefix=prefix))
    assert transport == cli == policy
