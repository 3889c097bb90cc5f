"""The PolicyStore on the shared Redis: several processes, races, audit, bad data, snapshot."""

import asyncio
import gc
import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC

import pytest
import redis as sync_redis
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_core import initialize_policy_store, shutdown_policy_store
from quantum_core.models import RiskConfig, RiskMode, RiskPolicy
from quantum_core.policy import PolicyStore, PolicyValidationError, RedisPolicyBackend
from quantum_core.policy.codec import encode_policy
from quantum_core.testing import eventually
from service_helpers import require

CHILD = r"""
import asyncio, json, sys, time
from quantum_core import configure_logging
from quantum_core.policy import PolicyStore, RedisPolicyBackend

def say(**fields):
    print(json.dumps(fields), flush=True)

async def main(role, url, prefix, arg, start_at):
    configure_logging("child", "WARNING", stream=sys.stderr)
    store = PolicyStore(RedisPolicyBackend(url, key_prefix=prefix, poll_interval=0.2))
    if role == "start":
        await asyncio.sleep(max(0.0, start_at - time.time()))
        policy = await store.initialize()
        say(version=policy.version, mode=policy.active_mode.value)
    elif role == "read":
        await store.initialize()
        say(ready=store.policy.version)
        deadline = time.monotonic() + 30
        while store.policy.version < int(arg):
            if time.monotonic() > deadline:
                raise SystemExit(f"never saw version {arg}")
            await asyncio.sleep(0.005)
        policy = await store.get_policy()
        say(version=policy.version, mode=policy.active_mode.value)
    elif role == "write":
        writer, count = arg.split(":")
        await store.initialize()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await store.switch_mode("DEFENSIVE" if writer == "a" else "AGGRESSIVE", updated_by=writer)
        base = 1000.0 if writer == "a" else 9000.0
        for i in range(int(count)):
            await store.update_config(
                "DEFENSIVE", updated_by=writer, max_position_notional_usd=base + i
            )
        say(done=writer)
    await store.close()

asyncio.run(main(*sys.argv[1:5], float(sys.argv[5])))
"""


@dataclass
class Shared:
    url: str
    prefix: str
    client: redis.Redis

    def backend(self, **options):
        return RedisPolicyBackend(self.url, key_prefix=self.prefix, **options)


@pytest.fixture
async def shared():
    url = require("redis")
    prefix = f"qc-test-policy-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(url)
    yield Shared(url, prefix, client)
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


class Child:
    def __init__(self, process):
        self.process = process

    @classmethod
    async def start(cls, role, shared, arg="", start_at=0.0):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            role,
            shared.url,
            shared.prefix,
            arg,
            str(start_at),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def said(self, timeout=30.0):
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            await self.finish()
        return json.loads(line)

    async def finish(self, timeout=60.0):
        try:
            _, err = await asyncio.wait_for(self.process.communicate(), timeout)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode == 0, err.decode()


# -- several processes ---------------------------------------------------------------------


async def test_a_switch_in_one_process_reaches_another(shared):
    async with PolicyStore(shared.backend()) as store:
        reader = await Child.start("read", shared, arg="1")
        assert (await reader.said())["ready"] == 0
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        assert await reader.said() == {"version": 1, "mode": "DEFENSIVE"}
        await reader.finish()


async def test_two_processes_writing_at_once_lose_nothing_and_never_repeat_a_version(shared):
    count = 25
    async with PolicyStore(shared.backend()) as store:
        start_at = time.time() + 1.5
        writers = [await Child.start("write", shared, f"{name}:{count}", start_at) for name in "ab"]
        for writer in writers:
            await writer.finish()
        history = await store.history(limit=1000)
        policy = await store.refresh()
    assert sorted(e.version for e in history) == list(range(2 * count + 3))
    assert policy.version == 2 * count + 2
    switches = [e for e in history if e.action == "mode"]
    assert sorted(e.updated_by for e in switches) == ["a", "b"]
    for name, base in (("a", 1000.0), ("b", 9000.0)):
        written = sorted(
            e.new["max_position_notional_usd"]
            for e in history
            if e.updated_by == name
            if e.action == "config"
        )
        assert written == [base + i for i in range(count)]
    assert (
        policy.active_mode.value
        == {"a": "DEFENSIVE", "b": "AGGRESSIVE"}[max(switches, key=lambda e: e.version).updated_by]
    )


async def test_processes_starting_together_store_the_default_once(shared):
    start_at = time.time() + 1.5
    children = [await Child.start("start", shared, start_at=start_at) for _ in range(3)]
    seen = [await child.said() for child in children]
    for child in children:
        await child.finish()
    assert seen == [{"version": 0, "mode": "NORMAL"}] * 3
    async with PolicyStore(shared.backend()) as store:
        (entry,) = await store.history()
    assert (entry.action, entry.version) == ("initial", 0)


# -- one process ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode_responses", [False, True])
async def test_the_guide_s_client_works_in_every_flavour(shared, protocol, decode_responses):
    client = redis.Redis.from_url(shared.url, protocol=protocol, decode_responses=decode_responses)
    store = await initialize_policy_store(client, key_prefix=shared.prefix)
    async with PolicyStore(shared.backend()) as other:
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        await eventually(lambda: other.policy.active_mode is RiskMode.DEFENSIVE)
        await other.update_config("DEFENSIVE", updated_by="desk", max_leverage=2.0)
        await eventually(lambda: store.policy.get_active_config().max_leverage == 2.0)
        assert [e.action for e in await store.history()] == ["config", "mode", "initial"]
    await shutdown_policy_store()
    assert await client.ping()  # the caller's client is left alone
    await client.aclose()


async def test_shutdown_leaves_no_task_or_connection_behind(shared):
    client = redis.Redis.from_url(shared.url)
    await initialize_policy_store(client, key_prefix=shared.prefix)
    assert any(t.get_name().startswith("quantum_core policy") for t in asyncio.all_tasks())
    await shutdown_policy_store()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("quantum_core policy")]
    gc.collect()  # an unclosed connection would warn here, and warnings are errors
    await client.aclose()


async def test_the_audit_history_is_bounded_and_newest_first(shared):
    async with PolicyStore(shared.backend(history_size=3)) as store:
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager", reason="volatility")
        for leverage in (2.0, 1.5, 1.0):
            await store.update_config("DEFENSIVE", updated_by="desk", max_leverage=leverage)
        history = await store.history(limit=10)
    assert [(e.version, e.old, e.new) for e in history] == [
        (4, {"max_leverage": 1.5}, {"max_leverage": 1.0}),
        (3, {"max_leverage": 2.0}, {"max_leverage": 1.5}),
        (2, {"max_leverage": 3.0}, {"max_leverage": 2.0}),
    ]
    assert await shared.client.llen(f"{shared.prefix}:history") == 3


async def test_invalid_limits_write_nothing(shared):
    async with PolicyStore(shared.backend()) as store:
        before = await shared.client.get(f"{shared.prefix}:current")
        with pytest.raises(PolicyValidationError, match=r"DEFENSIVE\.max_leverage=12\.0"):
            await store.update_config("DEFENSIVE", updated_by="desk", max_leverage=12.0)
        with pytest.raises(PolicyValidationError, match=r"NORMAL\.max_risk_pct_per_trade"):
            await store.update_config("NORMAL", updated_by="desk", max_risk_pct_per_trade=0)
        assert await shared.client.get(f"{shared.prefix}:current") == before
        assert len(await store.history()) == 1


async def test_a_store_listens_for_changes_once_initialize_returns(shared):
    """A change made right after initialize() is heard: the SUBSCRIBE is confirmed by then."""
    channel = f"{shared.prefix}:changes"
    # A blocking client asks at once, before the event loop could run anything more.
    with sync_redis.Redis.from_url(shared.url) as blocking:
        async with PolicyStore(shared.backend(poll_interval=60.0)):
            assert blocking.pubsub_numsub(channel) == [(channel.encode(), 1)]


async def test_a_notification_arrives_long_before_the_periodic_check(shared):
    async with (
        PolicyStore(shared.backend()) as writer,
        PolicyStore(shared.backend(poll_interval=60.0)) as reader,
    ):
        await writer.switch_mode("DEFENSIVE", updated_by="risk_manager")
        await eventually(lambda: reader.policy.active_mode is RiskMode.DEFENSIVE, timeout=2.0)


async def test_a_change_without_notification_is_caught_by_the_periodic_check(shared):
    async with PolicyStore(shared.backend(poll_interval=0.05)) as store:
        edited = store.policy.model_copy(update={"active_mode": RiskMode.DEFENSIVE, "version": 1})
        await shared.client.set(f"{shared.prefix}:current", encode_policy(edited))  # no PUBLISH
        await eventually(lambda: store.policy == edited, timeout=2.0)


@pytest.mark.parametrize(
    ("bad", "next_version"),
    [
        (b"garbage", 2),
        (b'{"version": 40, "active_mode": "PANIC"}', 41),
        (None, 2),  # a hash where a string belongs: WRONGTYPE
    ],
)
async def test_a_corrupt_value_is_reported_once_and_the_last_good_policy_kept(
    shared, log_lines, bad, next_version
):
    key = f"{shared.prefix}:current"
    async with PolicyStore(shared.backend(poll_interval=0.05)) as store:
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        if bad is None:
            await shared.client.delete(key)
            await shared.client.hset(key, "active_mode", "AGGRESSIVE")
        else:
            await shared.client.set(key, bad)
        await shared.client.publish(f"{shared.prefix}:changes", b"{}")
        await asyncio.sleep(0.3)  # several notices and periodic checks
        assert store.policy.active_mode is RiskMode.DEFENSIVE
        (report,) = log_lines.named("policy_value_unreadable")
        assert report["where"] == f"Redis key {key!r}"
        assert report["serving_version"] == 1

        async with PolicyStore(shared.backend()) as newcomer:  # starts without touching it
            assert newcomer.source == "defaults"
        assert (await shared.client.type(key)) == (b"hash" if bad is None else b"string")

        policy = await store.switch_mode("NORMAL", updated_by="risk_manager")
        assert policy.version == next_version
        assert await shared.client.get(key) == encode_policy(policy)


finite = {"allow_nan": False, "allow_infinity": False}
LIMITS = {
    "global_min_confidence": st.floats(0, 1, **finite),
    "max_leverage": st.floats(1, 125, **finite),
    "max_risk_pct_per_trade": st.floats(0, 1, exclude_min=True, **finite),
    "max_open_positions": st.integers(0, 2**31),
    "max_daily_loss_pct": st.floats(0, 1, exclude_min=True, **finite),
    "max_position_notional_usd": st.floats(0, exclude_min=True, **finite),
}


@st.composite
def valid_policies(draw):
    """Three modes in order: each ceiling sorted up from DEFENSIVE, the floor sorted down."""
    columns = {
        name: sorted(draw(st.lists(values, min_size=3, max_size=3)))
        for name, values in LIMITS.items()
    }
    columns["global_min_confidence"].reverse()
    modes = (RiskMode.DEFENSIVE, RiskMode.NORMAL, RiskMode.AGGRESSIVE)
    return RiskPolicy(
        active_mode=draw(st.sampled_from(RiskMode)),
        configs={
            mode: RiskConfig(**{name: column[i] for name, column in columns.items()})
            for i, mode in enumerate(modes)
        },
        version=draw(st.integers(0, 2**53)),
        updated_by=draw(st.text(min_size=1, max_size=200)),
        updated_at=draw(st.datetimes(timezones=st.sampled_from([UTC]) | st.none())),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(policy=valid_policies())
async def test_any_valid_policy_round_trips_through_redis_unchanged(shared, policy):
    writer, reader = shared.backend(), shared.backend()
    try:
        current = await reader.load()
        expected = None if current is None else current.version
        assert await writer.save(policy, expected_version=expected)
        loaded = await reader.load()
    finally:
        await writer.close()
        await reader.close()
    assert loaded == policy
    assert loaded.model_dump() == policy.model_dump()
    assert encode_policy(loaded) == encode_policy(policy)
