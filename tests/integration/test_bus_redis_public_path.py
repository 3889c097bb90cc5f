"""The fast path switches itself off on a redis-py it was not tested with; the bus still works.

The fast path (our parser, packed XADDs read straight from the connection) uses redis-py's
private parts. Outside ``quantum_core._redis.TESTED_REDIS_PY`` the transport takes
redis-py's public API instead; these tests force that on the installed redis-py and run
the whole transport contract there.
"""

import pytest
import redis
import redis.asyncio

import quantum_core._redis
from quantum_core import EventBus, RedisStreamsTransport
from quantum_core._redis import fast_path_tested
from quantum_core.testing import CHECKS, EventRecorder, TransportFeatures, check_transport


@pytest.fixture
def untested_redis_py(monkeypatch):
    """Make the installed redis-py look like a release the fast path was not tested with."""
    monkeypatch.setattr(quantum_core._redis, "TESTED_REDIS_PY", ((1, 0), (1, 1)))


@pytest.mark.parametrize(
    ("version", "tested"),
    [("5.2.1", False), ("5.3.0", True), ("6.1.0", True), ("8.2.9", True), ("8.3.0", False),
     ("9.0.0", False), ("not a version", False)],
)  # fmt: skip
def test_the_fast_path_is_on_only_for_the_tested_range(monkeypatch, log_lines, version, tested):
    monkeypatch.setattr(redis, "__version__", version)
    assert fast_path_tested() is tested
    off = log_lines.named("redis_fast_path_off")
    assert bool(off) is not tested
    if off:
        assert off[0]["level"] == "debug"
        assert (off[0]["redis_py"], off[0]["tested"]) == (version, "5.3 to 8.2")


async def test_an_untested_redis_py_gets_redis_py_s_own_parser_and_the_bus_works(
    untested_redis_py, transports, client
):
    from quantum_core.transports.redis.parser import WholeReplyParser

    transport = transports()
    assert transport.fast_path is False
    recorder = EventRecorder()
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.public", recorder, name="h")
    async with bus:
        await bus.publish_many("t.public", [{"n": n} for n in range(150)])
        await bus.publish("t.public", {"n": 150})
        await recorder.wait_for(151)
        for pool in (
            transport._state.commands.connection_pool,
            *(r.connection_pool for r in transport._state.readers),
        ):
            assert pool.connection_kwargs.get("parser_class") is not WholeReplyParser
        (group,) = await client.xinfo_groups(transport.stream_key("t.public"))
        assert group["pending"] == 0  # acknowledged through the public path too
    assert sorted(p["n"] for p in recorder.payloads) == list(range(151))


@pytest.mark.parametrize("check", list(CHECKS))
async def test_the_transport_contract_holds_on_the_public_path(
    untested_redis_py, check, redis_url, redis_prefix
):
    def make():
        transport = RedisStreamsTransport(redis_url, prefix=redis_prefix, claim_idle=1.0)
        assert transport.fast_path is False
        return transport

    await check_transport(make, features=TransportFeatures(redelivery_timeout=2.0), checks=[check])
