"""A Redis outage under running stores, on a redis-server of the test's own."""

import asyncio
import time

import pytest
import redis.asyncio as redis
from _services import RedisServer

from quantum_core._backoff import backoff
from quantum_core.models import RiskMode
from quantum_core.policy import PolicyStore, PolicyUnavailableError, RedisPolicyBackend
from quantum_core.testing import eventually
from sleep_recorder import record_waits


@pytest.fixture
def server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def test_stores_ride_out_a_redis_outage_and_a_restart_that_lost_the_data(server, log_lines):
    def backend():
        return RedisPolicyBackend(server.url, key_prefix="outage", poll_interval=0.1, timeout=1.0)

    async with PolicyStore(backend()) as writer, PolicyStore(backend()) as reader:
        await writer.switch_mode("DEFENSIVE", updated_by="risk_manager")
        await eventually(lambda: reader.policy.active_mode is RiskMode.DEFENSIVE)

        server.stop()
        await asyncio.sleep(0.5)  # several periodic checks and reconnect attempts
        for store in (writer, reader):
            assert (await store.get_policy()).active_mode is RiskMode.DEFENSIVE
            assert store.policy.version == 1
        started = time.monotonic()
        with pytest.raises(PolicyUnavailableError, match=r"could not read the policy: Redis at"):
            await writer.switch_mode("AGGRESSIVE", updated_by="desk")
        assert time.monotonic() - started < 2.0
        assert (await writer.get_policy()).active_mode is RiskMode.DEFENSIVE
        await asyncio.sleep(0.3)
        assert len(log_lines.named("policy_backend_unreachable")) == 2  # once per store
        assert len(log_lines.named("policy_notifications_interrupted")) == 2

        server.start()  # empty: no persistence
        await eventually(lambda: len(log_lines.named("policy_notifications_resumed")) == 2)
        await eventually(lambda: len(log_lines.named("policy_backend_reachable_again")) == 2)
        restored = log_lines.named("policy_restored")
        assert len(restored) == 1  # one store put the last good policy back, not both
        assert (restored[0]["active_mode"], restored[0]["version"]) == ("DEFENSIVE", 1)
        assert (await writer.history())[0].action == "restore"

        await writer.switch_mode("AGGRESSIVE", updated_by="desk")
        await eventually(lambda: reader.policy.active_mode is RiskMode.AGGRESSIVE)
        assert reader.policy.version == 2


async def test_the_listener_reconnects_when_its_connection_is_killed(server, log_lines):
    def backend():  # the periodic check is too slow to explain what this test sees
        return RedisPolicyBackend(server.url, key_prefix="kill", poll_interval=30.0)

    client = redis.Redis.from_url(server.url)
    async with PolicyStore(backend()) as writer, PolicyStore(backend()) as reader:
        await writer.switch_mode("DEFENSIVE", updated_by="risk_manager")
        await eventually(lambda: reader.policy.active_mode is RiskMode.DEFENSIVE, timeout=5.0)
        assert await client.client_kill_filter(_type="pubsub") == 2
        await eventually(lambda: len(log_lines.named("policy_notifications_resumed")) == 2)
        await writer.switch_mode("AGGRESSIVE", updated_by="desk")
        await eventually(lambda: reader.policy.active_mode is RiskMode.AGGRESSIVE, timeout=5.0)
    await client.aclose()


async def test_the_listener_reconnects_with_the_shared_jittered_backoff(server, monkeypatch):
    """Listeners that lost one Redis together must not all come back at the same instant."""
    server.stop()
    waits = record_waits(monkeypatch, "_listen")
    store = PolicyStore(RedisPolicyBackend(server.url, key_prefix="down", poll_interval=60.0))
    await store.initialize()
    await eventually(lambda: len(waits["_listen"]) >= 6)
    await store.close()
    # 50 ms doubling up to 2 s, half fixed and half random (pinned to its shortest here)
    assert waits["_listen"][:6] == [backoff(n, 0.05, 2.0) for n in range(1, 7)]
