"""Run the trading flow: every domain in one process (the roles, one per process: roles.py).

    python -m examples.trading.run --bus memory:// --ticks 36           # the demo, in memory
    QUANTUM_DEMO_BUS=redis://127.0.0.1:6379/0?prefix=t \
        quantum-core run examples.trading.roles:ai_engine              # one role (roles.py)
    python -m examples.trading.split --bus redis://127.0.0.1:6379/0    # four processes
    python -m examples.trading.run --postgres postgresql://postgres@127.0.0.1:5432/test
                                   # fills in PostgreSQL, their events through the outbox

A seeded feed publishes market ticks; the AI engine turns them into signals, risk approves or
rejects them against the active policy, execution fills the approved ones. Half way through,
the risk manager switches to DEFENSIVE and fewer signals get through. A summary follows the
log lines.

The domain modules are the same in every layout; a role only chooses which of them this
process subscribes (:func:`subscribe_role`). Four ``demo.*`` events let the demo's driver
follow the flow across processes without guessing from timing: ``demo.role.ready`` (a role is
subscribed), ``demo.tick.handled`` (the AI engine is done with a tick, and whether it made a
signal), ``demo.policy.synced`` (a role has adopted a new policy version) and
``demo.feed.resume`` (the feed may publish the second half). They are the demo's scaffolding,
not part of the trading flow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quantum_core import (
    EventBus,
    configure_logging,
    current_event,
    get_event_bus,
    get_logger,
    get_policy_store,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)
from quantum_core.models import (
    MarketDataEvent,
    OrderEvent,
    RiskMode,
    SignalEvent,
    TradeApprovalEvent,
)

from .domains.ai_engine.orchestrator import AIOrchestrator
from .domains.execution.executor import Executor
from .domains.market_data.feed import MarketDataFeed
from .domains.risk_safety.safety_governor import SafetyGovernor
from .telemetry import configure_tracing_from_env

if TYPE_CHECKING:
    from .fills import PostgresFills

SERVICE_NAME = "quantum_trader"
ROLES = ("market_data", "ai_engine", "risk_safety", "execution")
CONSUMER_ROLES = ROLES[1:]
POLICY_READERS = ("ai_engine", "risk_safety")  # the roles whose decisions read the policy
FLOW_EVENTS = (
    "market.data.update",
    "ai.signal.generated",
    "risk.signal.approved",
    "risk.signal.rejected",
    "execution.order.filled",
    "policy.mode.changed",
)
ROLE_READY = "demo.role.ready"
TICK_HANDLED = "demo.tick.handled"
POLICY_SYNCED = "demo.policy.synced"
FEED_RESUME = "demo.feed.resume"
WAIT_SECONDS = 60.0  # a bound for a stuck flow, never reached by a healthy one
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_BUS_URL_OPTIONS = ("prefix", "maxlen", "max_age", "claim_idle", "wait_replicas")

logger = get_logger("examples.trading.run", domain="demo")


# -- roles: which domain handlers a process subscribes --------------------------------------


def subscribe_role(
    role: str, bus: EventBus, feed_resumed: asyncio.Event, fills: PostgresFills | None = None
) -> None:
    """Subscribe the handlers of one role (all four for a single process, one role each else).

    ``fills``: execution records each fill in PostgreSQL and publishes it through the outbox.
    """
    declare_publishers(role, bus)
    if role == "market_data":

        async def resume_feed(payload: dict) -> None:
            feed_resumed.set()

        bus.subscribe(FEED_RESUME, resume_feed, name="market_data.resume")
    elif role == "ai_engine":
        orchestrator = AIOrchestrator()

        async def handle_tick(payload: dict) -> None:
            first = payload["symbol"] not in orchestrator.last_price
            filtered = orchestrator.filtered
            await orchestrator.handle_market_update(payload)
            outcome = (
                "first_price"
                if first
                else "filtered"
                if orchestrator.filtered > filtered
                else "signal"
            )
            await bus.publish(TICK_HANDLED, {"symbol": payload["symbol"], "outcome": outcome})

        # One tick at a time, so the momentum model sees each symbol's prices in order. The
        # group is named after the domain's handler, as when it is subscribed directly.
        bus.subscribe(
            "market.data.update",
            handle_tick,
            name=_qualified(orchestrator.handle_market_update),
            concurrency=1,
        )
    elif role == "risk_safety":
        safety_gov = SafetyGovernor()
        # One signal at a time, so the positions book is never read half-updated.
        bus.subscribe("ai.signal.generated", safety_gov.handle_signal, concurrency=1)
    elif role == "execution":
        executor = Executor(fills)
        bus.subscribe("risk.signal.approved", executor.handle_approved_signal)
    else:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")

    if role in POLICY_READERS:

        async def sync_policy(payload: dict) -> None:
            policy = await get_policy_store().refresh()  # adopt it now, then say so
            await bus.publish(
                POLICY_SYNCED,
                {"role": role, "mode": policy.active_mode.value, "version": policy.version},
            )

        bus.subscribe("policy.mode.changed", sync_policy, name=f"{role}.policy_sync")


def declare_publishers(role: str, bus: EventBus) -> None:
    """What the role publishes, and as which model: for its AsyncAPI document."""
    bus.publisher(ROLE_READY)
    if role == "market_data":
        bus.publisher("market.data.update", MarketDataEvent)
    elif role == "ai_engine":
        bus.publisher("ai.signal.generated", SignalEvent)
        bus.publisher(TICK_HANDLED)
    elif role == "risk_safety":
        bus.publisher("risk.signal.approved", TradeApprovalEvent)
        bus.publisher("risk.signal.rejected", TradeApprovalEvent)
    elif role == "execution":
        bus.publisher("execution.order.filled", OrderEvent)
    if role in POLICY_READERS:
        bus.publisher(POLICY_SYNCED)


def _qualified(handler: Callable[..., Any]) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"


async def publish_feed(
    ticks: int, seed: int, interval: float, hold_at: int | None, resumed: asyncio.Event
) -> None:
    """Publish the seeded feed; after ``hold_at`` ticks, wait for ``demo.feed.resume``."""
    feed = MarketDataFeed(seed=seed)
    for number, tick in enumerate(feed.ticks(ticks)):
        if number == hold_at:
            logger.info("feed_held", published=number)
            await resumed.wait()
        await feed.publish(tick)
        await asyncio.sleep(interval)
    logger.info("feed_finished", published=ticks)


# -- the monitor: every event of the flow, by trace id ---------------------------------------


@dataclass
class FlowMonitor:
    """Watches every event of the flow, to drive the demo, print the summary, check the chains."""

    counts: Counter[str] = field(default_factory=Counter)
    ticks: list[tuple[str, str]] = field(default_factory=list)  # (trace id, symbol), in order
    outcomes: dict[str, str] = field(default_factory=dict)  # first_price, filtered or signal
    signals: dict[str, dict] = field(default_factory=dict)
    verdicts: dict[str, dict] = field(default_factory=dict)
    fills: dict[str, dict] = field(default_factory=dict)
    synced: dict[str, int] = field(default_factory=dict)  # role -> policy version adopted
    ready: set[str] = field(default_factory=set)
    mode: str = RiskMode.NORMAL.value
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def subscribe(self, bus: EventBus) -> None:
        """Subscribe to the flow's events and the demo's, one at a time each."""
        for event_type in (*FLOW_EVENTS, ROLE_READY, TICK_HANDLED, POLICY_SYNCED):
            # Market ticks one at a time: their order here is the order they were published.
            bus.subscribe(event_type, self.on_event, name="monitor", concurrency=1)

    async def on_event(self, payload: dict) -> None:
        event = current_event()
        assert event is not None
        trace_id = event.trace_id
        self.counts[event.type] += 1
        if event.type == "market.data.update":
            self.ticks.append((trace_id, payload["symbol"]))
        elif event.type == TICK_HANDLED:
            self.outcomes[trace_id] = payload["outcome"]
        elif event.type == "ai.signal.generated":
            self.signals[trace_id] = payload
        elif event.type in ("risk.signal.approved", "risk.signal.rejected"):
            self.verdicts[trace_id] = payload
        elif event.type == "execution.order.filled":
            self.fills[trace_id] = payload
        elif event.type == "policy.mode.changed":
            self.mode = payload["active_mode"]
        elif event.type == POLICY_SYNCED:
            self.synced[payload["role"]] = max(
                self.synced.get(payload["role"], -1), payload["version"]
            )
        elif event.type == ROLE_READY:
            self.ready.add(payload["role"])
        self._changed.set()

    def unsettled(self, ticks: int) -> str | None:
        """What the first ``ticks`` ticks still wait for, or None when every chain is done."""
        if len(self.ticks) < ticks:
            return f"{len(self.ticks)} of {ticks} market ticks seen"
        traces = [trace for trace, _ in self.ticks[:ticks]]
        unhandled = sum(trace not in self.outcomes for trace in traces)
        if unhandled:
            return f"{unhandled} of {ticks} ticks not yet handled by ai_engine"
        signalled = [trace for trace in traces if self.outcomes[trace] == "signal"]
        # Each event type reaches the monitor through a consumer of its own: a verdict may
        # arrive before the signal it answers (seen on Kafka), so wait for both.
        unseen = sum(trace not in self.signals for trace in signalled)
        if unseen:
            return f"{unseen} of {len(signalled)} signals not yet seen"
        undecided = sum(trace not in self.verdicts for trace in signalled)
        if undecided:
            return f"{undecided} of {len(signalled)} signals not yet decided by risk_safety"
        unfilled = sum(
            self.verdicts[trace]["approved"] and trace not in self.fills for trace in signalled
        )
        if unfilled:
            return f"{unfilled} approved signals not yet filled by execution"
        return None

    def unsynced(self, version: int) -> str | None:
        """Which policy readers have not adopted ``version`` yet, or None."""
        late = [role for role in POLICY_READERS if self.synced.get(role, -1) < version]
        return f"{', '.join(late)} not yet on policy version {version}" if late else None

    def not_ready(self, roles: tuple[str, ...]) -> str | None:
        """Which roles have not said they are subscribed, or None."""
        missing = [role for role in roles if role not in self.ready]
        return f"{', '.join(missing)} not subscribed yet" if missing else None

    async def wait_until(
        self,
        missing: Callable[[], str | None],
        *,
        timeout: float = WAIT_SECONDS,
        failure: Callable[[], str | None] | None = None,
    ) -> None:
        """Wait until ``missing()`` is None; ``failure()`` (a dead process...) aborts at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            why = missing()
            if why is None:
                return
            problem = failure() if failure else None
            if problem:
                raise RuntimeError(f"{problem}; the flow was waiting: {why}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"gave up after {timeout:g} s: {why}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def decisions(self) -> list[dict[str, Any]]:
        """What became of every tick, in publish order: comparable between runs and transports."""
        rows = []
        for number, (trace, symbol) in enumerate(self.ticks):
            row: dict[str, Any] = {"tick": number, "symbol": symbol}
            row["outcome"] = self.outcomes.get(trace, "unhandled")
            if signal_ := self.signals.get(trace):
                row |= {"action": signal_["action"], "confidence": signal_["confidence"]}
            if verdict := self.verdicts.get(trace):
                row |= {
                    "approved": verdict["approved"],
                    "risk_mode": verdict["risk_mode"],
                    "reason": verdict["rejection_reason"],
                    "quantity": verdict["quantity"],
                }
            if fill := self.fills.get(trace):
                row |= {"filled": fill["filled_quantity"], "price": fill["price"]}
            rows.append(row)
        return rows

    def complete_chains(self) -> int:
        """Orders whose trace id is that of a market tick, its signal and its approval."""
        ticks = {trace for trace, _ in self.ticks}
        return sum(
            trace in ticks
            and trace in self.signals
            and self.verdicts.get(trace, {}).get("approved")
            for trace in self.fills
        )


def without_password(url: str) -> str:
    """The URL as it may be shown: a password in it becomes ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


def summary(bus_url: str, monitor: FlowMonitor, recorded: int | None = None) -> str:
    """The readable summary printed after the log lines."""
    counts = monitor.counts
    verdicts = [monitor.verdicts[trace] for trace, _ in monitor.ticks if trace in monitor.verdicts]
    by_mode = Counter(str(verdict["risk_mode"]) for verdict in verdicts)
    modes = ", ".join(f"{mode} {n}" for mode, n in by_mode.items())
    filtered = sum(outcome == "filtered" for outcome in monitor.outcomes.values())
    lines = [
        "quantum_core trading demo: summary",
        f"  transport       {without_password(bus_url)}",
        f"  market ticks    {counts['market.data.update']}",
        f"  signals         {counts['ai.signal.generated']} ({modes or 'none'}); "
        f"{filtered} filtered below the mode's min confidence",
        f"  approvals       {counts['risk.signal.approved']}",
        f"  rejections      {counts['risk.signal.rejected']}",
        f"  orders filled   {counts['execution.order.filled']}",
        f"  trace chains    {monitor.complete_chains()}/{len(monitor.fills)} orders carry the "
        "trace id of their market tick",
        f"  final mode      {monitor.mode}",
    ]
    if recorded is not None:
        lines.insert(-2, f"  fills recorded  {recorded} in PostgreSQL, each event via the outbox")
    return "\n".join(lines)


# -- the demo's script: the risk manager's switch half way through -------------------------


async def drive(
    monitor: FlowMonitor, ticks: int, *, failure: Callable[[], str | None] | None = None
) -> None:
    """Let the first half flow, switch to DEFENSIVE once every role saw it, let the rest flow.

    Every wait is for events, never for time: the same seed gives the same decisions on any
    transport and in any layout of processes.
    """
    half = ticks // 2
    await monitor.wait_until(lambda: monitor.unsettled(half), failure=failure)
    policy = await get_policy_store().switch_mode(RiskMode.DEFENSIVE, updated_by="risk_manager")
    await monitor.wait_until(lambda: monitor.unsynced(policy.version), failure=failure)
    await get_event_bus().publish(FEED_RESUME, {"after_ticks": half})
    await monitor.wait_until(lambda: monitor.unsettled(ticks), failure=failure)


async def reset_policy() -> None:
    """Start from NORMAL, whatever an earlier run on the same prefix left behind."""
    await get_policy_store().switch_mode(RiskMode.NORMAL, updated_by="demo")


def policy_location(
    bus_url: str, policy_url: str | None = None, *, shared: bool = True
) -> tuple[str | None, str | None]:
    """Where the risk policy lives: (Redis URL, key prefix), or (None, None) for memory.

    Processes share it through Redis: ``policy_url``, else the bus's Redis, under
    ``<prefix>:policy``. A single process on a bus that is not Redis keeps it in memory.

    Raises:
        ValueError: ``shared`` and neither URL is Redis.
    """
    parts = urlsplit(policy_url or bus_url)
    if parts.scheme not in _REDIS_SCHEMES:
        if policy_url is None and not shared:
            return None, None
        raise ValueError(
            "processes share their risk policy through Redis, and "
            f"{parts.scheme}:// is not Redis: pass --policy redis://host:6379/0"
        )
    url, prefix = _plain_redis_url(policy_url or bus_url)
    return url, f"{prefix}:policy"


def _plain_redis_url(url: str) -> tuple[str, str]:
    """The URL without the transport's options (for redis-py), and the key prefix."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = dict(query).get("prefix", "quantum_core")
    rest = urlencode([(k, v) for k, v in query if k not in _BUS_URL_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), prefix


def with_own_prefix(bus_url: str) -> tuple[str, str | None]:
    """A Redis URL without ``prefix=`` gets one of its own, returned to be deleted afterwards."""
    parts = urlsplit(bus_url)
    if parts.scheme not in _REDIS_SCHEMES or "prefix" in dict(parse_qsl(parts.query)):
        return bus_url, None
    prefix = f"quantum-demo-{uuid.uuid4().hex[:8]}"
    query = "&".join(filter(None, [parts.query, f"prefix={prefix}"]))
    return urlunsplit(parts._replace(query=query)), prefix


async def delete_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key the demo wrote under its own prefix; return how many."""
    import redis.asyncio as redis  # only the demo's clean-up needs it, never a domain

    client = redis.from_url(_plain_redis_url(redis_url)[0])
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


def write_decisions(path: str | None, monitor: FlowMonitor) -> None:
    if path:
        Path(path).write_text(json.dumps(monitor.decisions(), indent=1) + "\n")


# -- every role in one process (one role per process: roles.py, through quantum-core run) ---


async def run(
    bus_url: str,
    ticks: int,
    seed: int,
    interval: float,
    decisions: str | None = None,
    policy: str | None = None,
    postgres: str | None = None,
) -> str:
    """Run every role in this process, drive the flow once and return the summary.

    With ``postgres``, fills go to tables of the run's own there (dropped afterwards).
    """
    bus_url, own_prefix = with_own_prefix(bus_url)
    policy_url, key_prefix = policy_location(bus_url, policy, shared=False)
    await initialize_policy_store(policy_url, key_prefix=key_prefix, snapshot_path=None)
    bus = await initialize_event_bus(bus_url, service_name=SERVICE_NAME)
    monitor = FlowMonitor()
    fills = await open_fills(postgres)
    try:
        await reset_policy()
        resumed = asyncio.Event()
        for role in ROLES:
            subscribe_role(role, bus, resumed, fills)
        monitor.subscribe(bus)
        await bus.start()
        async with contextlib.AsyncExitStack() as relaying:
            if fills is not None:
                await relaying.enter_async_context(fills.relay(bus))
            feed = asyncio.create_task(publish_feed(ticks, seed, interval, ticks // 2, resumed))
            await drive(monitor, ticks, failure=lambda: feed_failure(feed))
            await feed
        write_decisions(decisions, monitor)
        return summary(bus_url, monitor, None if fills is None else await fills.count())
    finally:
        if fills is not None:
            await fills.close(drop=True)
        await shutdown_event_bus()
        await shutdown_policy_store()
        if own_prefix:
            await delete_prefix(bus_url, own_prefix)


async def open_fills(postgres: str | None, prefix: str | None = None) -> PostgresFills | None:
    if postgres is None:
        return None
    from .fills import PostgresFills  # asyncpg only when PostgreSQL is asked for

    return await PostgresFills.open(postgres, service_name=SERVICE_NAME, prefix=prefix)


def feed_failure(feed: asyncio.Task[None]) -> str | None:
    if feed.done() and not feed.cancelled() and feed.exception():
        return f"the feed failed: {feed.exception()!r}"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bus", default="memory://", help="transport URL (default memory://)")
    parser.add_argument("--ticks", type=int, default=36, help="market ticks to publish")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated feed")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between ticks")
    parser.add_argument(
        "--policy",
        help="the Redis URL where processes share the risk policy (default: the bus's Redis)",
    )
    parser.add_argument("--decisions", help="write every tick's outcome here (JSON)")
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="execution records fills in PostgreSQL and publishes them through the outbox",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("json", "console"), default="json")
    args = parser.parse_args(argv)

    try:
        policy_location(args.bus, args.policy, shared=False)
    except ValueError as error:
        parser.error(str(error))

    configure_logging(SERVICE_NAME, args.log_level, json_output=args.log_format == "json")
    configure_tracing_from_env(SERVICE_NAME)  # spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT set
    flow = (args.bus, args.ticks, args.seed, args.interval)
    print(
        asyncio.run(
            run(*flow, decisions=args.decisions, policy=args.policy, postgres=args.postgres)
        )
    )


if __name__ == "__main__":
    main()
