"""The snapshot belongs to one deployment (one Redis, one prefix) and to one user.

Two deployments on one host share the default prefix; the second one's Redis is empty. Its
store must start on its own defaults, not on the first deployment's mode, and the snapshot
must live in the user's private state directory, never in the shared temporary directory.
A store of the same deployment, starting while its Redis is down, does start on it.
"""

import asyncio
import json
import stat
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as redis
from _services import RedisServer

from quantum_core import initialize_policy_store, shutdown_policy_store
from quantum_core.models import RiskMode


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def own_redis():
    """A redis-server of the test's own (the other deployment's, or one to stop)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def in_the_temporary_directory(prefix):
    return list(Path(tempfile.gettempdir()).glob(f"*quantum_core*{prefix}*"))


def snapshots_in(directory):
    return sorted(directory.rglob("*.json")) if directory.exists() else []


async def test_a_snapshot_is_private_and_never_adopted_by_another_deployment(
    redis_url, client, state_home, own_redis, log_lines
):
    prefix = f"qc-test-snapshot-{uuid.uuid4().hex[:12]}"
    try:
        first = await initialize_policy_store(redis_url, key_prefix=prefix)
        await first.switch_mode("DEFENSIVE", updated_by="risk_manager")
        await shutdown_policy_store()  # waits for the snapshot write

        [snapshot] = snapshots_in(state_home)
        assert snapshot.parent == state_home / "quantum_core"
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
        assert stat.S_IMODE(snapshot.parent.stat().st_mode) == 0o700
        assert not in_the_temporary_directory(prefix)

        second = await initialize_policy_store(own_redis.url, key_prefix=prefix)
        assert second.policy.active_mode is RiskMode.NORMAL
        assert second.policy.version == 0
        await shutdown_policy_store()
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)


async def test_a_start_without_redis_uses_the_snapshot_of_the_last_run(
    own_redis, state_home, log_lines
):
    first = await initialize_policy_store(own_redis.url, key_prefix="app")
    switched = await first.switch_mode("DEFENSIVE", updated_by="risk_manager")
    await shutdown_policy_store()
    own_redis.stop()

    store = await initialize_policy_store(own_redis.url, key_prefix="app")
    assert (store.policy, store.source) == (switched, "snapshot")
    (line,) = log_lines.named("policy_started_without_backend")
    assert (line["source"], line["active_mode"]) == ("snapshot", "DEFENSIVE")
    assert "connect" in line["reason"].lower()

    own_redis.start()  # empty: the snapshot goes in as a seed, no write confirmed it yet
    client = redis.Redis.from_url(own_redis.url)
    try:
        deadline = time.monotonic() + 10
        while (raw := await client.get("app:current")) is None:
            assert time.monotonic() < deadline, "the snapshot was never stored"
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()
    document = json.loads(raw)
    assert (document["active_mode"], document["version"], document["seed"]) == (
        "DEFENSIVE",
        1,
        True,
    )
    await shutdown_policy_store()
