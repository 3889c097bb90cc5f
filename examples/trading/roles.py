"""The trading flow's roles as apps for ``quantum-core run``: one domain per process.

    QUANTUM_DEMO_BUS='redis://127.0.0.1:6379/0?prefix=t' \\
        quantum-core run examples.trading.roles:ai_engine

Each role (``market_data``, ``ai_engine``, ``risk_safety``, ``execution``) is a function
returning an :class:`~quantum_core.App`; ``quantum-core run`` starts it, logs one ready line,
and on SIGTERM stops taking events, drains the handlers in flight and exits 0. Settings come
from the environment, as a process manager passes them:

- ``QUANTUM_DEMO_BUS``: a transport URL every role reaches (not ``memory://``);
- ``QUANTUM_DEMO_POLICY``: the Redis URL where roles share the policy (default: the bus's);
- ``QUANTUM_DEMO_TICKS``, ``QUANTUM_DEMO_SEED``, ``QUANTUM_DEMO_INTERVAL``,
  ``QUANTUM_DEMO_HOLD_AT``: market_data's feed (36 ticks, seed 7, 0.01 s apart, no hold);
- ``QUANTUM_DEMO_POSTGRES``: execution records fills in PostgreSQL, their events through
  the outbox.

``everything`` is every role in one App on ``memory://``: what ``quantum-core asyncapi
examples.trading.roles:everything`` describes, without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from quantum_core import (
    App,
    get_logger,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)

from .run import (
    ROLE_READY,
    ROLES,
    SERVICE_NAME,
    feed_failure,
    open_fills,
    policy_location,
    publish_feed,
    subscribe_role,
)
from .telemetry import configure_tracing_from_env

ENV = "QUANTUM_DEMO_"
logger = get_logger("examples.trading.roles", domain="demo")


@dataclass(frozen=True)
class RoleSettings:
    """What a role process is told: where the bus and the policy are, and the feed's shape."""

    bus: str
    policy: str | None = None
    ticks: int = 36
    seed: int = 7
    interval: float = 0.01
    hold_at: int | None = None
    postgres: str | None = None

    @classmethod
    def from_env(cls) -> RoleSettings:
        """Read ``QUANTUM_DEMO_*``; raises ValueError naming what is missing or wrong."""
        bus = os.environ.get(f"{ENV}BUS")
        if not bus:
            raise ValueError(f"set {ENV}BUS to a broker every role reaches, such as redis://...")
        hold_at = os.environ.get(f"{ENV}HOLD_AT")
        return cls(
            bus=bus,
            policy=os.environ.get(f"{ENV}POLICY") or None,
            ticks=int(os.environ.get(f"{ENV}TICKS", "36")),
            seed=int(os.environ.get(f"{ENV}SEED", "7")),
            interval=float(os.environ.get(f"{ENV}INTERVAL", "0.01")),
            hold_at=int(hold_at) if hold_at else None,
            postgres=os.environ.get(f"{ENV}POSTGRES") or None,
        )

    def to_env(self) -> dict[str, str]:
        """The environment a role process reads these settings from."""
        values = {
            "BUS": self.bus,
            "POLICY": self.policy,
            "TICKS": self.ticks,
            "SEED": self.seed,
            "INTERVAL": self.interval,
            "HOLD_AT": self.hold_at,
            "POSTGRES": self.postgres,
        }
        return {f"{ENV}{k}": str(v) for k, v in values.items() if v is not None}


async def role_app(role: str, settings: RoleSettings | None = None) -> App:
    """The App of one role: its domain subscribed, the demo's ready event once it consumes."""
    settings = settings or RoleSettings.from_env()
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if urlsplit(settings.bus).scheme == "memory":
        raise ValueError(
            f"role {role} cannot use memory://: an in-memory bus lives inside one process, so "
            "the other roles could never reach it. Use a broker every role can reach, such as "
            f"{ENV}BUS=redis://127.0.0.1:6379/0 (or run every role in one process: "
            "python -m examples.trading.run)"
        )
    configure_tracing_from_env(f"{SERVICE_NAME}.{role}")  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
    policy_url, key_prefix = policy_location(settings.bus, settings.policy)
    store = await initialize_policy_store(policy_url, key_prefix=key_prefix, snapshot_path=None)
    bus = await initialize_event_bus(settings.bus, service_name=SERVICE_NAME)
    fills = await open_fills(settings.postgres if role == "execution" else None, "quantum_demo")
    resumed = asyncio.Event()
    subscribe_role(role, bus, resumed, fills)
    app = App(bus, policy_store=store, name=f"{SERVICE_NAME}.{role}")
    relaying = contextlib.AsyncExitStack()
    feed: list[asyncio.Task[None]] = []

    @app.after_startup
    async def announce() -> None:
        if fills is not None:
            await relaying.enter_async_context(fills.relay(bus))
        await bus.publish(ROLE_READY, {"role": role, "pid": os.getpid()})
        logger.info("role_started", role=role, pid=os.getpid())
        if role == "market_data":
            s = settings
            task = asyncio.create_task(
                publish_feed(s.ticks, s.seed, s.interval, s.hold_at, resumed)
            )
            task.add_done_callback(report_failure)
            feed.append(task)

    def report_failure(task: asyncio.Task[None]) -> None:
        if problem := feed_failure(task):
            logger.error("role_failed", role=role, error=problem)

    @app.on_shutdown
    async def stop_publishing() -> None:
        logger.info("role_stopping", role=role)
        for task in feed:
            task.cancel()
        await asyncio.gather(*feed, return_exceptions=True)
        await relaying.aclose()

    @app.after_shutdown
    async def release() -> None:
        if fills is not None:
            await fills.close(drop=False)
        await shutdown_event_bus()  # the app stopped both: this forgets the process-wide ones
        await shutdown_policy_store()
        logger.info("role_stopped", role=role)

    return app


async def market_data() -> App:
    """The seeded feed: publishes ``market.data.update``."""
    return await role_app("market_data")


async def ai_engine() -> App:
    """Market ticks in, signals out (the flow's one dict handler)."""
    return await role_app("ai_engine")


async def risk_safety() -> App:
    """Signals (``SignalEvent``) in, approvals or rejections out."""
    return await role_app("risk_safety")


async def execution() -> App:
    """Approvals (``TradeApprovalEvent``) in, fills out."""
    return await role_app("execution")


async def everything() -> App:
    """Every role in one App on ``memory://``: the whole flow's AsyncAPI document."""
    store = await initialize_policy_store(None, snapshot_path=None)
    bus = await initialize_event_bus("memory://", service_name=SERVICE_NAME)
    resumed = asyncio.Event()
    for role in ROLES:
        subscribe_role(role, bus, resumed)
    return App(bus, policy_store=store, name=SERVICE_NAME)
