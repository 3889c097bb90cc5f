import asyncio

import pytest
from pydantic import ValidationError

from quantum_core import EventBus, MemoryPolicyBackend, MemoryTransport, PolicyStore, current_event
from quantum_core.models import RiskMode, RiskPolicy


async def test_first_read_stores_and_returns_the_default_policy():
    backend = MemoryPolicyBackend()
    store = PolicyStore(backend)
    policy = await store.get_policy()
    assert policy.active_mode is RiskMode.NORMAL
    assert policy.version == 0
    assert await backend.load() == policy


async def test_reads_are_served_from_the_cache():
    store = PolicyStore()
    first = await store.get_policy()
    assert await store.get_policy() is first
    assert store.policy is first


def test_sync_accessor_before_loading_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"await store.initialize"):
        _ = PolicyStore().policy


async def test_switch_mode_changes_the_active_config_and_raises_the_version():
    store = PolicyStore()
    await store.initialize()
    policy = await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
    assert policy.active_mode is RiskMode.DEFENSIVE
    assert policy.version == 1
    assert policy.updated_by == "risk_manager"
    assert (await store.get_policy()).get_active_config().global_min_confidence > 0.75
    assert (await store.switch_mode("AGGRESSIVE", updated_by="desk")).version == 2


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


async def test_switch_mode_publishes_policy_mode_changed():
    transport = MemoryTransport()
    seen = []

    async def on_change(payload):
        seen.append((payload, current_event().source))

    listener = EventBus(transport, service_name="ai_engine")
    listener.subscribe("policy.mode.changed", on_change)
    store = PolicyStore(event_bus=EventBus(transport, service_name="risk"))
    async with listener:
        await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
    ((payload, source),) = seen
    assert source == "risk"
    assert payload["previous_mode"] == "NORMAL"
    assert payload["active_mode"] == "DEFENSIVE"
    assert payload["version"] == 1
    assert payload["updated_by"] == "risk_manager"


async def test_a_failed_broadcast_does_not_undo_the_switch(log_lines):
    bus = EventBus("memory://", service_name="risk")
    await bus.stop()  # publishing on it now fails
    store = PolicyStore(event_bus=bus)
    policy = await store.switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
    assert policy.active_mode is RiskMode.DEFENSIVE
    assert any(line["event"] == "policy_change_not_broadcast" for line in log_lines())


async def test_concurrent_writers_both_apply_and_versions_never_repeat():
    backend = MemoryPolicyBackend()
    stores = [PolicyStore(backend) for _ in range(5)]
    modes = [RiskMode.DEFENSIVE, RiskMode.AGGRESSIVE] * 10
    results = await asyncio.gather(
        *(
            stores[i % 5].update_config(m, updated_by=f"w{i}", max_leverage=2.0 + i % 3)
            for i, m in enumerate(modes)
        )
    )
    versions = sorted(p.version for p in results)
    assert versions == list(range(1, 21))
    assert (await backend.load()).version == 20


async def test_update_config_changes_one_mode_and_validates_limits():
    store = PolicyStore()
    policy = await store.update_config(RiskMode.NORMAL, updated_by="desk", max_leverage=4.0)
    assert policy.configs[RiskMode.NORMAL].max_leverage == 4.0
    assert policy.configs[RiskMode.AGGRESSIVE].max_leverage == 20.0
    with pytest.raises(ValidationError) as info:
        await store.update_config(RiskMode.NORMAL, updated_by="desk", global_min_confidence=1.5)
    assert info.value.errors()[0]["loc"] == ("global_min_confidence",)
    with pytest.raises(ValueError, match=r"unknown risk limit.*max_levrage.*known: global_min"):
        await store.update_config(RiskMode.NORMAL, updated_by="desk", max_levrage=4.0)
    with pytest.raises(ValueError, match=r"at least one limit"):
        await store.update_config(RiskMode.NORMAL, updated_by="desk")
    assert (await store.get_policy()).version == 1


@pytest.mark.parametrize("mode", ["PANIC", "defensive ", 3, None])
async def test_unknown_mode_lists_the_valid_ones(mode):
    with pytest.raises(ValueError, match=r"expected one of AGGRESSIVE, NORMAL, DEFENSIVE"):
        await PolicyStore().switch_mode(mode, updated_by="desk")


@pytest.mark.parametrize("who", ["", "   ", None])
async def test_updated_by_is_required(who):
    with pytest.raises(ValueError, match=r"updated_by must name who"):
        await PolicyStore().switch_mode(RiskMode.DEFENSIVE, updated_by=who)


def test_backend_of_the_wrong_type_is_rejected():
    with pytest.raises(TypeError, match=r"backend must be a PolicyBackend"):
        PolicyStore(backend="redis://localhost")


async def test_a_stored_policy_wins_over_the_default():
    stored = RiskPolicy(active_mode=RiskMode.DEFENSIVE, version=41, updated_by="yesterday")
    store = PolicyStore(MemoryPolicyBackend(stored))
    assert await store.get_policy() == stored
