import asyncio
import json

import pytest

from quantum_core import (
    EventBus,
    MemoryPolicyBackend,
    MemoryTransport,
    PolicyStore,
    current_event,
    get_policy_store,
    initialize_policy_store,
    trace_context,
)
from quantum_core._backoff import backoff
from quantum_core.models import RiskMode, RiskPolicy, default_risk_configs
from quantum_core.policy import (
    PolicyBackend,
    PolicyChange,
    PolicyDataError,
    PolicyUnavailableError,
    PolicyValidationError,
)
from quantum_core.policy.codec import decode_policy
from quantum_core.policy.snapshot import PolicySnapshot
from quantum_core.testing import eventually
from sleep_recorder import record_waits


class FlakyBackend(PolicyBackend):
    """A shared backend that can go down, hold a bad value, or lose its data."""

    poll_interval = 0.02

    def __init__(self, inner=None):
        self.inner = inner or MemoryPolicyBackend()
        self.down = False
        self.bad: PolicyDataError | None = None
        self.loads = 0

    async def load(self):
        stored = await self.load_stored()
        return None if stored is None else stored.policy

    async def load_stored(self):
        self.loads += 1
        if self.down:
            raise PolicyUnavailableError("the test backend is down")
        if self.bad is not None:
            raise self.bad
        return await self.inner.load_stored()

    async def save(self, policy, *, expected_version, change=None, replace_unreadable=False):
        if self.down:
            raise PolicyUnavailableError("the test backend is down")
        if self.bad is not None:
            if expected_version is not None or not replace_unreadable:
                return False
            self.bad = None
            self.inner._stored = None
        return await self.inner.save(policy, expected_version=expected_version, change=change)

    async def history(self, limit):
        return await self.inner.history(limit)

    def wipe(self):
        self.inner._stored = None


# -- reads ---------------------------------------------------------------------------------


async def test_first_read_stores_and_returns_the_default_policy():
    backend = MemoryPolicyBackend()
    async with PolicyStore(backend) as store:
        policy = await store.get_policy()
        assert policy.active_mode is RiskMode.NORMAL
        assert policy.version == 0
        assert await backend.load() == policy
        (entry,) = await store.history()
        assert (entry.action, entry.version, entry.new) == ("initial", 0, {"active_mode": "NORMAL"})


async def test_reads_are_served_from_the_cache():
    backend = FlakyBackend()
    async with PolicyStore(backend) as store:
        first = await store.get_policy()
        loads = backend.loads
        for _ in range(100):
            assert await store.get_policy() is first
            assert store.policy is first
        assert backend.loads == loads


def test_sync_accessor_before_loading_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"await store.initialize"):
        _ = PolicyStore().policy


async def test_a_stored_policy_wins_over_the_default():
    stored = RiskPolicy(active_mode=RiskMode.DEFENSIVE, version=41, updated_by="yesterday")
    async with PolicyStore(MemoryPolicyBackend(stored)) as store:
        assert await store.get_policy() == stored
        assert store.source == "backend"


# -- writes --------------------------------------------------------------------------------


async def test_switch_mode_changes_the_active_config_and_raises_the_version():
    async with PolicyStore() as store:
        policy = await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
        assert policy.active_mode is RiskMode.DEFENSIVE
        assert policy.version == 1
        assert policy.updated_by == "risk_manager"
        assert (await store.get_policy()).get_active_config().global_min_confidence > 0.75
        assert (await store.switch_mode("AGGRESSIVE", updated_by="desk")).version == 2


async def test_concurrent_writers_both_apply_and_versions_never_repeat():
    backend = MemoryPolicyBackend()
    stores = [PolicyStore(backend) for _ in range(5)]
    results = await asyncio.gather(
        *(
            stores[i % 5].update_config(
                RiskMode.DEFENSIVE, updated_by=f"w{i}", max_position_notional_usd=1000.0 + i
            )
            for i in range(20)
        )
    )
    assert sorted(p.version for p in results) == list(range(1, 21))
    assert (await backend.load()).version == 20
    history = await backend.history(100)
    assert sorted(e.updated_by for e in history if e.action == "config") == sorted(
        f"w{i}" for i in range(20)
    )
    for store in stores:
        await store.close()


async def test_a_write_that_lost_the_race_retries_with_the_shared_jittered_backoff(monkeypatch):
    class Contended(MemoryPolicyBackend):
        """Another writer wins the compare-and-set ``refusals`` times in a row."""

        refusals = 4

        async def save(self, policy, *, expected_version, change=None, replace_unreadable=False):
            if change is not None and change.action == "mode" and self.refusals:
                self.refusals -= 1
                return False
            return await super().save(policy, expected_version=expected_version, change=change)

    waits = record_waits(monkeypatch, "write_change")
    async with PolicyStore(Contended()) as store:
        assert (await store.switch_mode("DEFENSIVE", updated_by="desk")).version == 1
    # 2 ms doubling up to 20 ms, half fixed and half random (pinned to its shortest here)
    assert waits["write_change"] == [backoff(n, 0.002, 0.02) for n in range(1, 5)]


async def test_update_config_changes_one_mode_and_names_bad_limits():
    async with PolicyStore() as store:
        policy = await store.update_config(RiskMode.NORMAL, updated_by="desk", max_leverage=4.0)
        assert policy.configs[RiskMode.NORMAL].max_leverage == 4.0
        assert policy.configs[RiskMode.AGGRESSIVE].max_leverage == 20.0
        with pytest.raises(PolicyValidationError) as info:
            await store.update_config(RiskMode.NORMAL, updated_by="desk", global_min_confidence=1.5)
        (violation,) = info.value.violations
        assert violation.field == "NORMAL.global_min_confidence"
        assert "less than or equal to 1" in violation.rule
        assert isinstance(info.value, ValueError)
        with pytest.raises(ValueError, match=r"unknown risk limit.*max_levrage.*known: global_min"):
            await store.update_config(RiskMode.NORMAL, updated_by="desk", max_levrage=4.0)
        with pytest.raises(ValueError, match=r"at least one limit"):
            await store.update_config(RiskMode.NORMAL, updated_by="desk")
        assert (await store.get_policy()).version == 1


@pytest.mark.parametrize(
    ("limits", "field", "rule"),
    [
        ({"max_leverage": 0.5}, "NORMAL.max_leverage", "greater than or equal to 1"),
        ({"max_risk_pct_per_trade": 0.0}, "NORMAL.max_risk_pct_per_trade", "greater than 0"),
        ({"max_risk_pct_per_trade": 1.5}, "NORMAL.max_risk_pct_per_trade", "less than or equal"),
        ({"global_min_confidence": -0.1}, "NORMAL.global_min_confidence", "greater than or equal"),
        ({"max_open_positions": -1}, "NORMAL.max_open_positions", "greater than or equal to 0"),
        ({"max_position_notional_usd": float("inf")}, "NORMAL.max_position_notional_usd", "finite"),
        ({"max_daily_loss_pct": 0.01}, "NORMAL.max_daily_loss_pct", "may not be stricter than"),
        ({"max_leverage": 2.0}, "NORMAL.max_leverage", "must be >= DEFENSIVE.max_leverage (3.0)"),
        ({"max_leverage": 25.0}, "NORMAL.max_leverage", "must be <= AGGRESSIVE.max_leverage"),
        ({"global_min_confidence": 0.9}, "NORMAL.global_min_confidence", "<= DEFENSIVE"),
        ({"global_min_confidence": 0.5}, "NORMAL.global_min_confidence", ">= AGGRESSIVE"),
    ],
)
async def test_invalid_limits_are_rejected_naming_field_and_rule_and_nothing_is_written(
    limits, field, rule
):
    backend = MemoryPolicyBackend()
    async with PolicyStore(backend) as store:
        before = await backend.load()
        with pytest.raises(PolicyValidationError) as info:
            await store.update_config(RiskMode.NORMAL, updated_by="desk", **limits)
        assert [v.field for v in info.value.violations] == [field]
        assert rule in str(info.value)
        assert await backend.load() is before
        assert len(await store.history()) == 1


async def test_mode_order_allows_equal_limits_and_loosening_in_the_right_order():
    async with PolicyStore() as store:
        await store.update_config("AGGRESSIVE", updated_by="desk", max_leverage=30.0)
        await store.update_config("NORMAL", updated_by="desk", max_leverage=30.0)
        policy = await store.update_config("DEFENSIVE", updated_by="desk", max_leverage=30.0)
        assert {c.max_leverage for c in policy.configs.values()} == {30.0}


async def test_unchanged_limits_change_nothing():
    async with PolicyStore() as store:
        policy = await store.update_config("NORMAL", updated_by="desk", max_leverage=10.0)
        assert policy.version == 0


@pytest.mark.parametrize("mode", ["PANIC", "defensive ", 3, None])
async def test_unknown_mode_lists_the_valid_ones(mode):
    with pytest.raises(ValueError, match=r"expected one of AGGRESSIVE, NORMAL, DEFENSIVE"):
        await PolicyStore().switch_mode(mode, updated_by="desk")


@pytest.mark.parametrize("who", ["", "   ", None, "x" * 201])
async def test_updated_by_is_required(who):
    with pytest.raises(ValueError, match=r"updated_by must name who"):
        await PolicyStore().switch_mode(RiskMode.DEFENSIVE, updated_by=who)


def test_backend_of_the_wrong_type_is_rejected():
    with pytest.raises(TypeError, match=r"backend must be a PolicyBackend"):
        PolicyStore(backend="redis://localhost")


def test_an_invalid_default_is_rejected():
    configs = default_risk_configs()
    configs[RiskMode.DEFENSIVE] = configs[RiskMode.AGGRESSIVE]
    with pytest.raises(PolicyValidationError, match=r"DEFENSIVE\.max_leverage"):
        PolicyStore(default=RiskPolicy(configs=configs))


async def test_a_closed_store_keeps_serving_but_refuses_writes():
    store = PolicyStore()
    policy = await store.get_policy()
    await store.close()
    await store.close()
    assert await store.get_policy() is policy
    assert await store.refresh() is policy
    with pytest.raises(RuntimeError, match=r"closed"):
        await store.switch_mode("DEFENSIVE", updated_by="desk")


# -- audit ---------------------------------------------------------------------------------


async def test_every_change_is_in_the_bounded_history_newest_first():
    async with PolicyStore(MemoryPolicyBackend(history_size=3)) as store:
        with trace_context.scope("4bf92f3577b34da6a3ce929d0e0e4736"):
            await store.switch_mode("DEFENSIVE", updated_by="risk_manager", reason="volatility")
        await store.update_config(
            "NORMAL", updated_by="desk", max_leverage=5.0, max_open_positions=3
        )
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")  # no change, no entry
        await store.switch_mode("NORMAL", updated_by="risk_manager")
        newest, config, switch = await store.history(limit=10)
    assert newest.version == 3
    assert (newest.old, newest.new) == ({"active_mode": "DEFENSIVE"}, {"active_mode": "NORMAL"})
    assert config.action == "config"
    assert config.mode is RiskMode.NORMAL
    assert config.old == {"max_leverage": 10.0, "max_open_positions": 5}
    assert config.new == {"max_leverage": 5.0, "max_open_positions": 3}
    assert switch.reason == "volatility"
    assert switch.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert switch.updated_by == "risk_manager"
    assert switch.updated_at.tzinfo is not None


@pytest.mark.parametrize("limit", [0, -1, 10_001, 1.5, True])
async def test_history_limit_is_checked(limit):
    with pytest.raises(ValueError, match=r"limit must be (a whole number >= 1|at most 10000), got"):
        await PolicyStore().history(limit=limit)


# -- the event bus -------------------------------------------------------------------------


async def test_switching_to_the_active_mode_changes_and_announces_nothing():
    transport = MemoryTransport()
    seen = []

    async def on_change(payload):
        seen.append(payload)

    listener = EventBus(transport, service_name="listener")
    listener.subscribe("policy.mode.changed", on_change)
    store = PolicyStore(event_bus=EventBus(transport, service_name="risk"))
    async with listener:
        policy = await store.switch_mode(RiskMode.NORMAL, updated_by="desk")
        await asyncio.sleep(0.05)
    assert policy.version == 0
    assert seen == []
    await store.close()


async def test_switch_mode_publishes_policy_mode_changed_with_the_trace_id():
    transport = MemoryTransport()
    seen = []

    async def on_change(payload):
        seen.append((payload, current_event().source, current_event().trace_id))

    listener = EventBus(transport, service_name="ai_engine")
    listener.subscribe("policy.mode.changed", on_change)
    store = PolicyStore(event_bus=EventBus(transport, service_name="risk"))
    async with listener:
        with trace_context.scope() as trace_id:
            await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager", reason="vol")
        await eventually(lambda: seen)
    ((payload, source, event_trace),) = seen
    assert source == "risk"
    assert payload["previous_mode"] == "NORMAL"
    assert payload["active_mode"] == "DEFENSIVE"
    assert payload["version"] == 1
    assert payload["updated_by"] == "risk_manager"
    assert payload["reason"] == "vol"
    assert payload["updated_at"].endswith("+00:00")
    assert payload["trace_id"] == event_trace == trace_id
    await store.close()


async def test_a_switch_without_a_trace_gets_a_new_trace_id():
    transport = MemoryTransport()
    seen = []

    async def on_change(payload):
        seen.append(payload["trace_id"])

    listener = EventBus(transport, service_name="ai_engine")
    listener.subscribe("policy.mode.changed", on_change)
    async with listener, PolicyStore(event_bus=EventBus(transport, service_name="risk")) as store:
        await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
        await eventually(lambda: seen)
        (entry, _) = await store.history()
    assert len(seen[0]) == 32
    assert entry.trace_id == seen[0]


async def test_a_failed_broadcast_does_not_undo_the_switch(log_lines):
    bus = EventBus("memory://", service_name="risk")
    await bus.stop()  # publishing on it now fails
    async with PolicyStore(event_bus=bus) as store:
        policy = await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
    assert policy.active_mode is RiskMode.DEFENSIVE
    assert log_lines.named("policy_change_not_broadcast")


# -- propagation ---------------------------------------------------------------------------


async def test_a_change_reaches_every_store_sharing_the_backend():
    backend = MemoryPolicyBackend()
    async with PolicyStore(backend) as writer, PolicyStore(backend) as reader:
        await writer.switch_mode("DEFENSIVE", updated_by="risk_manager")
        await eventually(lambda: reader.policy.active_mode is RiskMode.DEFENSIVE)
        await writer.update_config("DEFENSIVE", updated_by="desk", max_leverage=2.0)
        await eventually(lambda: reader.policy.get_active_config().max_leverage == 2.0)
        assert reader.policy == writer.policy


async def test_a_store_loaded_by_its_first_read_follows_changes_too():
    backend = MemoryPolicyBackend()
    writer, reader = PolicyStore(backend), PolicyStore(backend)
    await reader.get_policy()
    await writer.switch_mode("AGGRESSIVE", updated_by="desk")
    await eventually(lambda: reader.policy.active_mode is RiskMode.AGGRESSIVE)
    await writer.close()
    await reader.close()


async def test_a_closed_store_stops_following():
    backend = MemoryPolicyBackend()
    async with PolicyStore(backend) as writer:
        reader = PolicyStore(backend)
        await reader.initialize()
        await reader.close()
        await writer.switch_mode("DEFENSIVE", updated_by="desk")
        await asyncio.sleep(0.02)
        assert reader.policy.active_mode is RiskMode.NORMAL


async def test_a_backend_without_notifications_is_polled():
    class Quiet(PolicyBackend):
        poll_interval = 0.01

        def __init__(self, inner):
            self.inner = inner

        async def load(self):
            return await self.inner.load()

        async def save(self, policy, **kwargs):
            return await self.inner.save(policy, **kwargs)

    shared = MemoryPolicyBackend()
    async with PolicyStore(Quiet(shared)) as writer, PolicyStore(Quiet(shared)) as reader:
        await writer.switch_mode("DEFENSIVE", updated_by="desk")
        await eventually(lambda: reader.policy.active_mode is RiskMode.DEFENSIVE)
        with pytest.raises(NotImplementedError, match=r"Quiet keeps no audit history"):
            await reader.history()


# -- outages and bad data ------------------------------------------------------------------


async def test_an_unreachable_backend_serves_the_last_good_policy_and_refuses_writes(log_lines):
    backend = FlakyBackend()
    async with PolicyStore(backend) as store:
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        backend.down = True
        for _ in range(5):
            assert (await store.refresh()).active_mode is RiskMode.DEFENSIVE
        assert store.policy.active_mode is RiskMode.DEFENSIVE
        with pytest.raises(PolicyUnavailableError, match=r"down"):
            await store.switch_mode("AGGRESSIVE", updated_by="desk")
        await asyncio.sleep(0.1)  # several periodic checks
        assert len(log_lines.named("policy_backend_unreachable")) == 1
        assert log_lines.named("policy_backend_unreachable")[0]["serving_mode"] == "DEFENSIVE"
        backend.down = False
        await eventually(lambda: log_lines.named("policy_backend_reachable_again"))
        assert (await store.switch_mode("AGGRESSIVE", updated_by="desk")).version == 2


async def test_a_reload_the_backend_did_not_answer_is_retried_with_the_shared_backoff(
    monkeypatch,
):
    class Notifying(FlakyBackend):
        poll_interval = 60.0  # no periodic check: only the retry reloads

        async def watch(self, on_change):
            self.notify = on_change
            return await super().watch(on_change)

    waits = record_waits(monkeypatch, "_refresh_until_settled")
    backend = Notifying()
    async with PolicyStore(backend) as store:
        backend.down = True
        backend.notify()
        await eventually(lambda: len(waits["_refresh_until_settled"]) >= 5)
        backend.down = False
    # 0.1 s doubling up to the poll interval (at most 5 s), half fixed and half random
    assert waits["_refresh_until_settled"][:5] == [backoff(n, 0.1, 5.0) for n in range(1, 6)]
    assert store.source == "backend"


async def test_an_unreadable_value_is_reported_once_and_the_last_good_policy_kept(log_lines):
    backend = FlakyBackend()
    async with PolicyStore(backend) as store:
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        backend.bad = PolicyDataError("test key", "not JSON", stored_version=7)
        await asyncio.sleep(0.1)
        assert store.policy.active_mode is RiskMode.DEFENSIVE
        (report,) = log_lines.named("policy_value_unreadable")
        assert (report["where"], report["reason"], report["serving_version"]) == (
            "test key",
            "not JSON",
            1,
        )
        policy = await store.switch_mode("AGGRESSIVE", updated_by="desk")
        assert policy.version == 8  # above the bad value's version: versions never repeat
        assert (await backend.load()) == policy
        assert log_lines.named("policy_unreadable_value_replaced")


async def test_a_backend_bug_during_a_reload_is_logged_not_lost(log_lines):
    backend = FlakyBackend()
    async with PolicyStore(backend) as store:
        backend.wipe()

        async def broken_save(*args, **kwargs):
            raise TypeError("a bug in the backend")

        backend.save = broken_save
        await eventually(lambda: log_lines.named("policy_reload_failed"))
        assert store.policy.version == 0


async def test_an_emptied_backend_gets_the_last_good_policy_back(log_lines):
    backend = FlakyBackend()
    async with PolicyStore(backend) as store:
        switched = await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        backend.wipe()
        await eventually(lambda: backend.inner._stored is not None)
        assert await backend.load() == switched
        assert log_lines.named("policy_restored")[0]["version"] == 1
        assert (await store.history())[0].action == "restore"


async def test_a_start_without_backend_uses_the_snapshot_then_adopts_the_backend(
    tmp_path, log_lines
):
    path = tmp_path / "policy.json"
    saved = RiskPolicy(active_mode=RiskMode.DEFENSIVE, version=9, updated_by="risk_manager")
    backend = FlakyBackend(MemoryPolicyBackend(saved.model_copy(update={"version": 10})))
    snapshot = PolicySnapshot(path, backend.deployment)  # as the last run wrote it
    snapshot.save_soon(saved)
    await snapshot.close()
    backend.down = True
    async with PolicyStore(backend, snapshot_path=path) as store:
        assert store.policy == saved
        assert store.source == "snapshot"
        (line,) = log_lines.named("policy_started_without_backend")
        assert line["source"] == "snapshot"
        backend.down = False
        await eventually(lambda: store.policy.version == 10)
        assert store.source == "backend"
    assert json.loads(path.read_bytes())["policy"]["version"] == 10


@pytest.mark.parametrize("content", [None, b"{not json", b'{"active_mode": "PANIC"}'])
async def test_a_start_without_backend_or_good_snapshot_uses_the_defaults(
    tmp_path, log_lines, content
):
    path = tmp_path / "policy.json"
    backend = FlakyBackend()
    if content is not None:  # with the right deployment: unreadable, not foreign
        deployment = json.dumps(backend.deployment).encode()
        path.write_bytes(b'{"deployment": ' + deployment + b', "policy": ' + content + b"}")
        path.chmod(0o600)
    backend.down = True
    async with PolicyStore(backend, snapshot_path=path) as store:
        assert store.policy.active_mode is RiskMode.NORMAL
        assert store.source == "defaults"
        assert log_lines.named("policy_started_without_backend")[0]["source"] == "defaults"
        assert bool(log_lines.named("policy_snapshot_unreadable")) is (content is not None)
        backend.down = False  # an empty backend then gets the defaults stored once
        await eventually(lambda: backend.inner._stored is not None)
        assert (await store.history())[0].action == "initial"


async def test_the_snapshot_is_written_after_each_change(tmp_path):
    path = tmp_path / "deep" / "policy.json"
    async with PolicyStore(snapshot_path=path) as store:
        await store.switch_mode("DEFENSIVE", updated_by="desk")
        await store.update_config("DEFENSIVE", updated_by="desk", max_leverage=2.0)
    stored = json.loads(path.read_text())["policy"]
    assert (stored["active_mode"], stored["version"]) == ("DEFENSIVE", 2)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


async def test_a_snapshot_that_cannot_be_written_is_reported_once(tmp_path, log_lines):
    blocker = tmp_path / "file"
    blocker.write_text("")
    async with PolicyStore(snapshot_path=blocker / "policy.json") as store:
        await store.switch_mode("DEFENSIVE", updated_by="desk")
        await store.switch_mode("NORMAL", updated_by="desk")
    assert len(log_lines.named("policy_snapshot_not_written")) == 1


# -- codec and runtime ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason", "version"),
    [
        (b"\xff", "Invalid JSON", None),
        (b"[]", "should be an object", None),
        (b'{"version": 2, "active_mode": "DEFENSIVE"}', "missing field(s) configs", 2),
        (b'{"version": 4, "active_mode": "PANIC"}', "active_mode", 4),
        (b'{"version": 4.0, "configs": 1}', "configs", 4),
        (b'{"version": true}', "version: Input should be a valid integer", None),
    ],
)
def test_a_bad_document_names_where_and_why(raw, reason, version):
    with pytest.raises(PolicyDataError) as info:
        decode_policy(raw, where="Redis key 'k'")
    assert info.value.where == "Redis key 'k'"
    assert reason in info.value.reason
    assert info.value.stored_version == version
    assert "Redis key 'k'" in str(info.value)


def test_a_document_with_modes_out_of_order_is_unreadable():
    configs = default_risk_configs()
    configs[RiskMode.DEFENSIVE] = configs[RiskMode.AGGRESSIVE]
    document = RiskPolicy(configs=configs, version=3).model_dump_json()
    with pytest.raises(PolicyDataError, match=r"DEFENSIVE may not be looser than NORMAL") as info:
        decode_policy(document, where="k")
    assert info.value.stored_version == 3


def test_an_audit_entry_round_trips():
    entry = PolicyChange(
        version=3,
        action="mode",
        updated_by="desk",
        updated_at="2025-12-01T12:00:00Z",
        old={"active_mode": "NORMAL"},
        new={"active_mode": "DEFENSIVE"},
    )
    assert PolicyChange.model_validate_json(entry.model_dump_json()) == entry


async def test_initialize_policy_store_takes_memory_a_backend_or_nothing():
    store = await initialize_policy_store("memory://")
    assert get_policy_store() is store
    assert store.backend.__class__ is MemoryPolicyBackend


async def test_initialize_policy_store_rejects_what_it_cannot_use():
    import redis

    with pytest.raises(TypeError, match=r"redis.asyncio.Redis client.*got redis.client.Redis"):
        await initialize_policy_store(redis.Redis())
    with pytest.raises(ValueError, match=r"key_prefix applies to a Redis"):
        await initialize_policy_store(MemoryPolicyBackend(), key_prefix="x")
    with pytest.raises(RuntimeError, match=r"not initialized"):
        get_policy_store()
