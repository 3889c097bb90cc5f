"""App (issue 22): the order a service starts and stops in, and the running() test helper."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from quantum_core import (
    App,
    EventBus,
    HealthChecker,
    MemoryPolicyBackend,
    MemoryTransport,
    PolicyStore,
    TransportError,
)
from quantum_core.models import RiskMode
from quantum_core.testing import EventRecorder, running
from service_helpers import free_port


class Signal(BaseModel):
    symbol: str
    confidence: float


async def test_start_and_stop_run_every_part_in_order() -> None:
    order: list[str] = []
    bus = EventBus("memory://", service_name="risk")
    store = PolicyStore(MemoryPolicyBackend())
    health = HealthChecker("risk")
    app = App(bus, policy_store=store, health=health, name="risk.replica")

    def hook(stage: str):  # type: ignore[no-untyped-def]
        async def record() -> None:
            order.append(f"{stage}: policy {store.policy.active_mode.value}, bus {bus.is_running}")

        return record

    for stage in ("on_startup", "after_startup", "on_shutdown", "after_shutdown"):
        getattr(app, stage)(hook(stage))

    async with app:
        assert store.event_bus is bus  # its changes are announced on the app's bus
        await store.switch_mode(RiskMode.DEFENSIVE, updated_by="test")
    assert order == [
        "on_startup: policy NORMAL, bus False",  # the policy is loaded first
        "after_startup: policy NORMAL, bus True",
        "on_shutdown: policy DEFENSIVE, bus True",
        "after_shutdown: policy DEFENSIVE, bus False",  # the bus has drained
    ]
    assert (app.name, app.service_name) == ("risk.replica", "risk")
    with pytest.raises(RuntimeError):
        await store.switch_mode(RiskMode.NORMAL, updated_by="test")  # closed


async def test_a_broker_that_does_not_answer_fails_start_and_leaves_nothing_open() -> None:
    bus = EventBus(f"redis://127.0.0.1:{free_port()}/0", service_name="far")
    store = PolicyStore(MemoryPolicyBackend())
    started: list[str] = []
    app = App(bus, policy_store=store)
    app.on_startup(lambda: started.append("hook"))  # type: ignore[arg-type, func-returns-value]
    with pytest.raises(TransportError):
        await app.start()
    assert started == []
    with pytest.raises(RuntimeError, match="stopped"):
        await bus.initialize()  # stopped and released, not half-open


def test_app_takes_an_event_bus() -> None:
    with pytest.raises(TypeError, match="App\\(bus\\) takes an EventBus, got str"):
        App("memory://")  # type: ignore[arg-type]


async def test_settled_waits_for_chains_retries_and_dead_letters_across_apps() -> None:
    broker = MemoryTransport()
    risk = EventBus(broker, service_name="risk", retry_backoff=0.01)
    failures = {"count": 0}

    @risk.subscriber("ai.signal.generated")
    async def on_signal(signal: Signal) -> None:
        if signal.symbol == "FLAKY" and failures["count"] < 2:
            failures["count"] += 1
            raise RuntimeError("not yet")
        if signal.confidence >= 0.7:
            await risk.publish("risk.signal.approved", {"symbol": signal.symbol})

    probe = EventBus(broker, service_name="probe")
    approved = EventRecorder()
    probe.subscribe("risk.signal.approved", approved)
    async with running(App(risk), probe) as flow:
        await flow.bus.publish("ai.signal.generated", {"symbol": "BTCUSDT", "confidence": 0.9})
        await flow.bus.publish("ai.signal.generated", {"symbol": "FLAKY", "confidence": 0.8})
        await flow.bus.publish("ai.signal.generated", {"symbol": "ETHUSDT", "confidence": 0.1})
        await flow.bus.publish("ai.signal.generated", {"symbol": "BAD"})  # dead-lettered
        await flow.settled()
        assert sorted(p["symbol"] for p in approved.payloads) == ["BTCUSDT", "FLAKY"]
        assert len(await risk.dead_letters("ai.signal.generated")) == 1
    await broker.close()


async def test_settled_says_what_is_left_when_it_does_not_settle() -> None:
    bus = EventBus("memory://", service_name="svc", retry_backoff=60)

    @bus.subscriber("a.b")
    async def never(payload: dict) -> None:
        raise RuntimeError("always")

    async with running(bus) as test:
        await bus.publish("a.b", {})
        with pytest.raises(AssertionError, match=r"not settled within 0.2s: .*svc: a.b ->"):
            await test.settled(timeout=0.2)


async def test_running_refuses_a_bus_that_is_not_on_memory() -> None:
    bus = EventBus(f"redis://127.0.0.1:{free_port()}/0", service_name="far")
    with pytest.raises(TypeError, match="running\\(\\) needs the memory transport; 'far'"):
        async with running(bus):
            pass
    await bus.stop()
