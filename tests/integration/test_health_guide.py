"""The guide's lifespan and /health endpoint, run as written with quantum_core and a real Redis.

The code between the marked lines is the guide's ``backend/main.py`` with ``backend.core``
renamed ``quantum_core`` and the domain classes loaded from ``tests/examples``. The first
test runs steps 1, 2 and 5 alone (only the health checker and Redis); the second runs the
whole lifespan, steps 1 to 7, and removes the Redis keys and snapshot file it created.
"""

import asyncio
import importlib.util
import json
import os
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as redis

from quantum_core import (
    configure_logging,
    initialize_event_bus,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_policy_store,
)
from quantum_core.health import (
    get_health_checker,
    initialize_health_checker,
    shutdown_health_checker,
)
from service_helpers import REDIS_URL as GUIDE_REDIS_URL
from service_helpers import require

FAKE_KEY = "AKEY-ab12cd34ef56gh78ij90kl12mn34op56qr78st90uv12wx34yz56ab78cd90"
FAKE_SECRET = "SECRET-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2"  # noqa: S105 - fake


@pytest.fixture
async def guide_env(monkeypatch):
    require("redis")
    monkeypatch.setenv("REDIS_URL", GUIDE_REDIS_URL)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("BINANCE_API_KEY", FAKE_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", FAKE_SECRET)
    yield
    await shutdown_health_checker()
    configure_logging("test-service", "INFO")


# -- the guide's backend/main.py, steps 1, 2 and 5 (imports renamed) ----------------------
@asynccontextmanager
async def lifespan_1_2_5(app):
    """Application lifespan - startup and shutdown."""

    # 1. Configure logging FIRST
    configure_logging(
        service_name="quantum_trader",
        log_level=os.getenv("LOG_LEVEL", "INFO"),
        json_output=True,  # JSON for production
    )

    # 2. Connect to Redis
    redis_url = os.getenv("REDIS_URL", "redis://localhost:6379")
    redis_client = redis.from_url(redis_url, decode_responses=False)

    # 5. Initialize HealthChecker
    health_checker = await initialize_health_checker(  # noqa: F841 - the guide's name
        service_name="quantum_trader",
        redis_client=redis_client,
        binance_api_key=os.getenv("BINANCE_API_KEY"),
        binance_api_secret=os.getenv("BINANCE_API_SECRET"),
        binance_testnet=True,
    )

    print("✅ Quantum Trader v2 initialized successfully")

    yield  # Application running

    # Shutdown
    print("🛑 Shutting down...")

    await redis_client.close()

    print("✅ Shutdown complete")


# -- the guide's backend/main.py, steps 1 to 7 (imports renamed) ---------------------------
@asynccontextmanager
async def lifespan(app):
    """Application lifespan - startup and shutdown."""

    # 1. Configure logging FIRST
    configure_logging(
        service_name="quantum_trader",
        log_level=os.getenv("LOG_LEVEL", "INFO"),
        json_output=True,  # JSON for production
    )

    # 2. Connect to Redis
    redis_url = os.getenv("REDIS_URL", "redis://localhost:6379")
    redis_client = redis.from_url(redis_url, decode_responses=False)

    # 3. Initialize PolicyStore
    policy_store = await initialize_policy_store(redis_client)  # noqa: F841 - the guide's

    # 4. Initialize EventBus
    event_bus = await initialize_event_bus(
        redis_client,
        service_name="quantum_trader",
    )

    # 5. Initialize HealthChecker
    health_checker = await initialize_health_checker(  # noqa: F841 - the guide's name
        service_name="quantum_trader",
        redis_client=redis_client,
        binance_api_key=os.getenv("BINANCE_API_KEY"),
        binance_api_secret=os.getenv("BINANCE_API_SECRET"),
        binance_testnet=True,
    )

    # 6. Register event subscribers
    await register_event_handlers(event_bus)

    # 7. Start EventBus consumer tasks
    await event_bus.start()

    print("✅ Quantum Trader v2 initialized successfully")

    yield  # Application running

    # Shutdown
    print("🛑 Shutting down...")

    await event_bus.stop()
    await shutdown_event_bus()
    await shutdown_policy_store()
    await redis_client.close()

    print("✅ Shutdown complete")


async def register_event_handlers(event_bus):
    """Register all event handlers."""
    AIOrchestrator = guide_module("guide_orchestrator").AIOrchestrator  # noqa: N806
    SafetyGovernor = guide_module("guide_safety_governor").SafetyGovernor  # noqa: N806
    Executor = guide_module("guide_executor").Executor  # noqa: N806

    # AI Engine subscribes to market data
    orchestrator = AIOrchestrator()
    event_bus.subscribe("market.data.update", orchestrator.handle_market_update)

    # Risk Safety subscribes to AI signals
    safety_gov = SafetyGovernor()
    event_bus.subscribe("ai.signal.generated", safety_gov.handle_signal)

    # Executor subscribes to approved signals
    executor = Executor()
    event_bus.subscribe("risk.signal.approved", executor.handle_approved_signal)


async def health():
    """Get service health status."""
    checker = get_health_checker()
    report = await checker.get_health_report()
    return report.to_dict()


# -------------------------------------------------------------------------------------------


def guide_module(name):
    """Load one of the guide's domain modules from tests/examples by path."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"health_guide_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def resolves_testnet():
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo("testnet.binance.vision", 443), 3
        )
    except (OSError, TimeoutError):
        return False
    return True


# redis-py deprecates the guide's `redis_client.close()` in favour of `aclose()`.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_guide_steps_1_2_5_and_health_endpoint(guide_env, capsys):
    async with lifespan_1_2_5(app=None):
        body = await health()
        again = await health()
    output = capsys.readouterr().out

    assert json.loads(json.dumps(body)) == body
    assert again == body  # cached: a burst of probes is one run
    assert body["service"] == "quantum_trader"
    assert body["dependencies"]["redis"]["status"] == "HEALTHY"
    assert body["dependencies"]["redis"]["latency_ms"] > 0
    exchange = body["dependencies"]["binance_rest"]
    assert {"status", "latency_ms"} <= exchange.keys()
    if not await resolves_testnet():  # our machines: no internet
        assert exchange["status"] != "HEALTHY"
        assert exchange["error"].startswith("cannot reach https://testnet.binance.vision")
        assert body["status"] == "DEGRADED"  # the exchange is not critical by default
    assert {"cpu_percent", "memory_percent", "disk_percent", "status"} <= body["system"].keys()
    assert {"uptime_seconds", "timestamp", "version"} <= body.keys()

    assert "initialized successfully" in output
    assert "Shutdown complete" in output
    everything = json.dumps(body) + output
    assert FAKE_KEY not in everything
    assert FAKE_SECRET not in everything
    assert exchange["key_hint"] == "AKEY-ab1****"


@pytest.fixture
async def keys_created_by_the_guide(guide_env, monkeypatch, tmp_path):
    """Remove the Redis keys (default prefix) and snapshot file the guide's run creates."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the policy snapshot goes here
    client = redis.from_url(GUIDE_REDIS_URL)
    try:
        before = {key async for key in client.scan_iter(match="quantum_core:*", count=1000)}
        groups_before = {key: await _groups(client, key) for key in before}
        yield
        after = {key async for key in client.scan_iter(match="quantum_core:*", count=1000)}
        if after - before:
            await client.delete(*(after - before))
        for key, groups in groups_before.items():
            for group in await _groups(client, key) - groups:
                await client.xgroup_destroy(key, group)
    finally:
        await client.aclose()


async def _groups(client, key):
    if await client.type(key) != b"stream":
        return set()
    return {group["name"] for group in await client.xinfo_groups(key)}


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_guide_lifespan_steps_1_to_7_and_health_endpoint(keys_created_by_the_guide, capsys):
    async with lifespan(app=None):
        body = await health()
    output = capsys.readouterr().out

    assert body["service"] == "quantum_trader"
    assert body["dependencies"]["redis"]["status"] == "HEALTHY"
    exchange = body["dependencies"]["binance_rest"]
    if not await resolves_testnet():
        assert exchange["status"] != "HEALTHY"
        assert body["status"] == "DEGRADED"
    assert "initialized successfully" in output
    assert "Shutdown complete" in output
    assert FAKE_KEY not in output + json.dumps(body)
    assert FAKE_SECRET not in output + json.dumps(body)
