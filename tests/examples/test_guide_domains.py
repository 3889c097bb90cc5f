"""The design guide's code runs as written on the in-memory transport."""

import pytest

from quantum_core import (
    get_event_bus,
    get_policy_store,
    initialize_event_bus,
    initialize_policy_store,
)
from quantum_core.models import RiskMode
from quantum_core.testing import eventually

from .guide_executor import Executor
from .guide_orchestrator import AIOrchestrator
from .guide_safety_governor import SafetyGovernor


# -- verbatim from the guide's "Policy Management Examples" (imports renamed) --------------
async def switch_to_defensive_mode():
    """Switch to defensive mode during high volatility."""
    policy_store = get_policy_store()

    await policy_store.switch_mode(
        RiskMode.DEFENSIVE,
        updated_by="risk_manager",
    )


async def check_current_leverage():
    """Get max leverage for current risk mode."""
    policy_store = get_policy_store()
    policy = await policy_store.get_policy()
    config = policy.get_active_config()

    print(f"Current mode: {policy.active_mode}")
    print(f"Max leverage: {config.max_leverage}x")
    print(f"Risk per trade: {config.max_risk_pct_per_trade:.2%}")


# -------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def bus_transport(request):
    """Where the guide's flow runs: in memory, or on the real Redis under a prefix of its own."""
    if request.param == "memory":
        return "memory://"
    url = request.getfixturevalue("redis_url")
    return f"{url}?prefix={request.getfixturevalue('redis_prefix')}"


async def wire_the_guides_flow(transport):
    """The guide's lifespan steps 3, 4, 6 and 7 and its register_event_handlers()."""
    await initialize_policy_store()
    event_bus = await initialize_event_bus(transport, service_name="quantum_trader")
    orchestrator = AIOrchestrator()
    event_bus.subscribe("market.data.update", orchestrator.handle_market_update)
    safety_gov = SafetyGovernor()
    event_bus.subscribe("ai.signal.generated", safety_gov.handle_signal)
    executor = Executor()
    event_bus.subscribe("risk.signal.approved", executor.handle_approved_signal)

    seen = {}

    async def record(payload):
        seen.setdefault(payload.get("symbol"), []).append(payload)

    event_bus.subscribe("execution.order.filled", record, name="orders")
    event_bus.subscribe("policy.mode.changed", record, name="mode_changes")
    await event_bus.start()
    return event_bus, seen


async def test_the_guides_three_domains_turn_a_tick_into_a_filled_order(log_lines, bus_transport):
    event_bus, seen = await wire_the_guides_flow(bus_transport)
    await event_bus.publish("market.data.update", {"symbol": "BTCUSDT", "price": 50_000.0})
    await eventually(lambda: "BTCUSDT" in seen, "the order filled")

    (order,) = seen["BTCUSDT"]
    assert order["order_id"] == "ORD-12345"
    assert order["status"] == "FILLED"
    assert order["action"] == "LONG"

    lines = log_lines()
    flow = {
        line["event"]: line
        for line in lines
        if line["event"]
        in {"signal_generated", "signal_received", "signal_approved", "order_submitted"}
    }
    assert set(flow) == {
        "signal_generated",
        "signal_received",
        "signal_approved",
        "order_submitted",
    }
    assert len({line["trace_id"] for line in flow.values()}) == 1  # one trace, end to end
    assert flow["signal_generated"]["domain"] == "ai_engine"
    assert flow["signal_approved"]["domain"] == "risk_safety"
    assert flow["order_submitted"]["order_id"] == "ORD-12345"


async def test_the_guides_policy_snippets_switch_to_defensive_and_filter_signals(
    capsys, log_lines, bus_transport
):
    event_bus, seen = await wire_the_guides_flow(bus_transport)
    await check_current_leverage()
    await switch_to_defensive_mode()
    await check_current_leverage()
    await event_bus.publish("market.data.update", {"symbol": "ETHUSDT", "price": 3_000.0})
    await eventually(
        lambda: None in seen and log_lines.named("signal_filtered_low_confidence"),
        "the mode change seen and the ETHUSDT signal filtered",
    )

    assert "ETHUSDT" not in seen  # 0.75 is below DEFENSIVE's minimum confidence
    (change,) = seen[None]
    assert change["active_mode"] == "DEFENSIVE"
    assert any(line["event"] == "signal_filtered_low_confidence" for line in log_lines())
    out = capsys.readouterr().out
    assert "Current mode: NORMAL\nMax leverage: 10.0x\nRisk per trade: 1.00%" in out
    assert "Current mode: DEFENSIVE\nMax leverage: 3.0x\nRisk per trade: 0.50%" in out
    assert get_event_bus() is event_bus
