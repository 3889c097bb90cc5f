"""Run the three-domain trading flow on the transport a URL names (in memory by default).

    python -m examples.trading.run --bus memory:// --ticks 36

A seeded feed publishes market ticks; the AI engine turns them into signals, risk approves or
rejects them against the active policy, execution fills the approved ones. Half way through,
the risk manager switches to DEFENSIVE and fewer signals get through. A summary follows the
log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from quantum_core import (
    configure_logging,
    current_event,
    get_event_bus,
    get_policy_store,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)
from quantum_core.models import RiskMode

from .domains.ai_engine.orchestrator import AIOrchestrator
from .domains.execution.executor import Executor
from .domains.market_data.feed import MarketDataFeed
from .domains.risk_safety.safety_governor import SafetyGovernor

SERVICE_NAME = "quantum_trader"


@dataclass
class FlowMonitor:
    """Watches every event of the flow to print the summary and check the trace chains."""

    counts: Counter[str] = field(default_factory=Counter)
    signals_by_mode: Counter[str] = field(default_factory=Counter)
    tick_traces: set[str] = field(default_factory=set)
    order_traces: list[str] = field(default_factory=list)
    mode: str = RiskMode.NORMAL.value
    last_activity: float = field(default_factory=time.monotonic)

    async def on_event(self, payload: dict) -> None:
        event = current_event()
        assert event is not None
        self.last_activity = time.monotonic()
        self.counts[event.type] += 1
        if event.type == "market.data.update":
            self.tick_traces.add(event.trace_id)
        elif event.type == "ai.signal.generated":
            self.signals_by_mode[self.mode] += 1
        elif event.type == "execution.order.filled":
            self.order_traces.append(event.trace_id)
        elif event.type == "policy.mode.changed":
            self.mode = payload["active_mode"]

    async def wait_idle(self, quiet: float = 0.25, deadline: float = 15.0) -> None:
        """Wait until no event has arrived for ``quiet`` seconds."""
        give_up = time.monotonic() + deadline
        while time.monotonic() < give_up:
            if time.monotonic() - self.last_activity >= quiet:
                return
            await asyncio.sleep(quiet / 5)


def register_event_handlers(monitor: FlowMonitor) -> AIOrchestrator:
    """Subscribe the three domains (as the guide does) and the monitor."""
    event_bus = get_event_bus()
    orchestrator = AIOrchestrator()
    # One tick at a time, so the momentum model sees each symbol's prices in order.
    event_bus.subscribe("market.data.update", orchestrator.handle_market_update, concurrency=1)
    safety_gov = SafetyGovernor()
    # One signal at a time, so the positions book is never read half-updated.
    event_bus.subscribe("ai.signal.generated", safety_gov.handle_signal, concurrency=1)
    executor = Executor()
    event_bus.subscribe("risk.signal.approved", executor.handle_approved_signal)

    for event_type in (
        "market.data.update",
        "ai.signal.generated",
        "risk.signal.approved",
        "risk.signal.rejected",
        "execution.order.filled",
        "policy.mode.changed",
    ):
        event_bus.subscribe(event_type, monitor.on_event, name="monitor", concurrency=1)
    return orchestrator


def summary(bus_url: str, monitor: FlowMonitor, orchestrator: AIOrchestrator) -> str:
    """The readable summary printed after the log lines."""
    counts = monitor.counts
    by_mode = ", ".join(f"{mode} {n}" for mode, n in monitor.signals_by_mode.items())
    orders = len(monitor.order_traces)
    complete = sum(trace in monitor.tick_traces for trace in monitor.order_traces)
    lines = [
        "quantum_core trading demo: summary",
        f"  transport       {bus_url}",
        f"  market ticks    {counts['market.data.update']}",
        f"  signals         {counts['ai.signal.generated']} ({by_mode or 'none'}); "
        f"{orchestrator.filtered} filtered below the mode's min confidence",
        f"  approvals       {counts['risk.signal.approved']}",
        f"  rejections      {counts['risk.signal.rejected']}",
        f"  orders filled   {counts['execution.order.filled']}",
        f"  trace chains    {complete}/{orders} orders carry the trace id of their market tick",
        f"  final mode      {monitor.mode}",
    ]
    return "\n".join(lines)


async def run(bus_url: str, ticks: int, seed: int, interval: float) -> str:
    """Run the flow once and return the summary."""
    await initialize_policy_store()
    await initialize_event_bus(bus_url, service_name=SERVICE_NAME)
    monitor = FlowMonitor()
    try:
        orchestrator = register_event_handlers(monitor)
        await get_event_bus().start()

        feed = MarketDataFeed(seed=seed)
        stream = feed.ticks(ticks)
        half = ticks // 2
        for tick in (next(stream) for _ in range(half)):
            await feed.publish(tick)
            await asyncio.sleep(interval)
        await monitor.wait_idle()
        await get_policy_store().switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
        await monitor.wait_idle()
        for tick in stream:
            await feed.publish(tick)
            await asyncio.sleep(interval)
        await monitor.wait_idle()
        return summary(bus_url, monitor, orchestrator)
    finally:
        await shutdown_event_bus()
        await shutdown_policy_store()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bus", default="memory://", help="transport URL (default memory://)")
    parser.add_argument("--ticks", type=int, default=36, help="market ticks to publish")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated feed")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between ticks")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("json", "console"), default="json")
    args = parser.parse_args(argv)

    configure_logging(SERVICE_NAME, args.log_level, json_output=args.log_format == "json")
    print(asyncio.run(run(args.bus, args.ticks, args.seed, args.interval)))


if __name__ == "__main__":
    main()
