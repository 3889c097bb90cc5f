import pytest

from quantum_core import (
    EventBus,
    PolicyStore,
    get_event_bus,
    get_policy_store,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)
from quantum_core.models import RiskMode
from quantum_core.testing import eventually


def test_get_before_initialize_names_the_call_to_make():
    with pytest.raises(RuntimeError, match=r"initialize_event_bus\("):
        get_event_bus()
    with pytest.raises(RuntimeError, match=r"initialize_policy_store\(\)"):
        get_policy_store()


async def test_initialize_then_get_returns_the_same_instance():
    bus = await initialize_event_bus("memory://", service_name="svc")
    store = await initialize_policy_store()
    assert isinstance(bus, EventBus)
    assert isinstance(store, PolicyStore)
    assert get_event_bus() is bus
    assert get_policy_store() is store


async def test_initializing_twice_says_to_shut_down_first():
    await initialize_event_bus(service_name="svc")
    with pytest.raises(RuntimeError, match="shutdown_event_bus"):
        await initialize_event_bus(service_name="svc")
    await initialize_policy_store()
    with pytest.raises(RuntimeError, match="shutdown_policy_store"):
        await initialize_policy_store()


async def test_shutdown_twice_is_harmless_and_get_fails_after():
    await initialize_event_bus(service_name="svc")
    await initialize_policy_store()
    for _ in range(2):
        await shutdown_event_bus()
        await shutdown_policy_store()
    with pytest.raises(RuntimeError):
        get_event_bus()


@pytest.mark.parametrize("store_first", [True, False])
async def test_policy_changes_are_broadcast_on_the_process_bus_whatever_the_order(store_first):
    if store_first:  # the guide's order: policy store (step 3) before the bus (step 4)
        await initialize_policy_store()
        bus = await initialize_event_bus(service_name="svc")
    else:
        bus = await initialize_event_bus(service_name="svc")
        await initialize_policy_store()
    seen = []

    async def on_change(payload):
        seen.append(payload["active_mode"])

    bus.subscribe("policy.mode.changed", on_change)
    await bus.start()
    await get_policy_store().switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
    await eventually(lambda: seen, "the change received")
    assert seen == ["DEFENSIVE"]


async def test_shutting_the_bus_down_detaches_it_from_the_store():
    await initialize_policy_store()
    await initialize_event_bus(service_name="svc")
    await shutdown_event_bus()
    assert get_policy_store().event_bus is None
    await get_policy_store().switch_mode(RiskMode.DEFENSIVE, updated_by="desk")  # no error


@pytest.mark.parametrize("key_prefix", ["", "has space"])
async def test_a_bad_policy_key_prefix_is_refused_not_replaced_by_the_default(key_prefix):
    with pytest.raises(ValueError, match=r"key_prefix must be a non-empty string"):
        await initialize_policy_store("redis://127.0.0.1:1/0", key_prefix=key_prefix)
