"""The trading service as a FastAPI application: the guide's lifespan, health and policy endpoints.

    QUANTUM_ADMIN_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
        python -m examples.trading.app              # then: curl http://127.0.0.1:8000/health

The lifespan follows the guide's seven steps (logging, Redis, PolicyStore, EventBus,
HealthChecker, handlers, start) and undoes them in reverse at shutdown. The service runs
the ai_engine, risk_safety and execution domains; market data arrives on the bus (from
``python -m examples.trading.run --role market_data`` or any publisher).

Endpoints:

* ``GET /health``: the full report, HTTP 503 when UNHEALTHY (a critical dependency is down).
* ``GET /health/live``: touches no dependency; ``GET /health/ready``: 503 unless ready.
* ``GET /policy``: the risk policy in force.
* ``GET /metrics``: Prometheus metrics (docs/observability.md lists them).
* ``POST /policy/mode`` with ``{"mode": "DEFENSIVE", "updated_by": "..."}``: needs
  ``Authorization: Bearer <QUANTUM_ADMIN_TOKEN>``; 401 without a bearer token, 403 with a
  wrong one, 404 when the service has no token configured (the endpoint is disabled).

Settings come from environment variables (see ``settings.py``). With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set (such as ``http://127.0.0.1:4318``), spans go to that
OTLP/HTTP collector (``telemetry.py``).
"""

from __future__ import annotations

import hmac
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as redis
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, SecretStr

from quantum_core import (
    EventBus,
    PolicyUnavailableError,
    PolicyValidationError,
    configure_logging,
    get_health_checker,
    get_logger,
    get_policy_store,
    initialize_event_bus,
    initialize_health_checker,
    initialize_policy_store,
    shutdown_event_bus,
    shutdown_health_checker,
    shutdown_policy_store,
)
from quantum_core.models import RiskMode, RiskPolicy

from .settings import Settings, SettingsError, load_settings
from .telemetry import configure_tracing_from_env

logger = get_logger("examples.trading.app", domain="api")

# The service's own version (the guide's), in its OpenAPI page and in every /health report.
APP_VERSION = "2.0.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; settings are read from the environment at startup if None."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or load_settings()
        app.state.settings = config

        # 1. Configure logging FIRST (and tracing, when a collector is named)
        configure_logging(
            config.service_name, config.log_level, json_output=config.log_format == "json"
        )
        tracer_provider = configure_tracing_from_env(config.service_name)
        # 2. Connect to Redis
        redis_client = redis.from_url(config.redis_url, decode_responses=False)
        try:
            # 3. Initialize PolicyStore
            await initialize_policy_store(
                redis_client,
                key_prefix=config.policy_key_prefix,
                snapshot_path=config.snapshot_path,
            )
            # 4. Initialize EventBus (on the same Redis unless BUS_URL names another transport)
            event_bus = await initialize_event_bus(
                config.bus_url or redis_client,
                service_name=config.service_name,
            )
            # 5. Initialize HealthChecker
            token = config.admin_token
            await initialize_health_checker(
                service_name=config.service_name,
                version=APP_VERSION,
                redis_client=redis_client,
                binance_api_key=_secret(config.binance_api_key),
                binance_api_secret=_secret(config.binance_api_secret),
                binance_testnet=config.binance_testnet,
                binance_base_url=config.binance_base_url,
                check_binance=config.check_binance,
                event_bus=event_bus,
                default_timeout=config.health_timeout,
                secrets=[_secret(token)],
            )
            # 6. Register event subscribers
            await register_event_handlers(event_bus)
            # 7. Start EventBus consumer tasks
            await event_bus.start()
            logger.info(
                "service_started",
                bus=type(event_bus.transport).__name__,
                policy_mode=get_policy_store().policy.active_mode.value,
                admin_endpoint="enabled" if token else "disabled",
            )

            yield  # Application running

            logger.info("service_stopping")
        finally:
            await shutdown_event_bus()  # stops consuming, lets handlers in flight finish
            await shutdown_health_checker()
            await shutdown_policy_store()
            await redis_client.aclose()
            if tracer_provider is not None:
                tracer_provider.shutdown()  # exports the spans still batched
            logger.info("service_stopped")

    app = FastAPI(title="quantum_core trading service", version=APP_VERSION, lifespan=lifespan)
    app.include_router(router)
    return app


async def register_event_handlers(event_bus: EventBus) -> None:
    """Register all event handlers (the guide's, one signal and one tick at a time)."""
    from .domains.ai_engine.orchestrator import AIOrchestrator
    from .domains.execution.executor import Executor
    from .domains.risk_safety.safety_governor import SafetyGovernor

    # AI Engine subscribes to market data (in order: the model compares consecutive prices)
    orchestrator = AIOrchestrator()
    event_bus.subscribe("market.data.update", orchestrator.handle_market_update, concurrency=1)
    # Risk Safety subscribes to AI signals (in order: the positions book is read and updated)
    safety_gov = SafetyGovernor()
    event_bus.subscribe("ai.signal.generated", safety_gov.handle_signal, concurrency=1)
    # Executor subscribes to approved signals
    executor = Executor()
    event_bus.subscribe("risk.signal.approved", executor.handle_approved_signal)


# -- endpoints ------------------------------------------------------------------------------


class ModeSwitch(BaseModel):
    """The body of ``POST /policy/mode``."""

    mode: RiskMode
    updated_by: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(None, max_length=1000)


_bearer = HTTPBearer(auto_error=False, description="QUANTUM_ADMIN_TOKEN")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the request through only with the configured bearer token (compared in constant time).

    No token configured: 404, the endpoint does not exist for this service. No bearer token
    (or another scheme): 401. A wrong token: 403. The token is never logged.
    """
    expected = request.app.state.settings.admin_token
    client = request.client.host if request.client else None
    if expected is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "policy mode switching is disabled: the service was started without "
            "QUANTUM_ADMIN_TOKEN",
        )
    if credentials is None:
        logger.warning("admin_request_refused", reason="missing_credentials", client=client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required: Authorization: Bearer <QUANTUM_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    presented = credentials.credentials.encode()
    if not hmac.compare_digest(presented, expected.get_secret_value().encode()):
        logger.warning("admin_request_refused", reason="invalid_credentials", client=client)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the bearer token is not valid")


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics: quantum_core's (bus, policy, health) and the process's."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/health")
async def health() -> JSONResponse:
    """The service's health: dependencies and host; HTTP 503 when UNHEALTHY."""
    report = await get_health_checker().get_health_report()
    return JSONResponse(report.to_dict(), status_code=report.http_status)


@router.get("/health/live")
async def live() -> JSONResponse:
    """Liveness: answers while the process can, touches no dependency."""
    return JSONResponse(get_health_checker().liveness().to_dict())


@router.get("/health/ready")
async def ready() -> JSONResponse:
    """Readiness: dependencies checked; HTTP 503 unless the service can do its job."""
    report = await get_health_checker().readiness()
    return JSONResponse(report.to_dict(), status_code=report.http_status)


@router.get("/policy")
async def read_policy() -> dict[str, Any]:
    """The risk policy in force (from this process's cache, as every decision reads it)."""
    store = get_policy_store()
    return _policy_body(await store.get_policy(), store.source)


@router.post("/policy/mode", dependencies=[Depends(require_admin)])
async def switch_mode(body: ModeSwitch, request: Request) -> dict[str, Any]:
    """Switch the active risk mode for every process sharing the policy."""
    store = get_policy_store()
    logger.info(
        "policy_mode_switch_requested",
        mode=body.mode.value,
        updated_by=body.updated_by,
        client=request.client.host if request.client else None,
    )
    try:
        policy = await store.switch_mode(body.mode, updated_by=body.updated_by, reason=body.reason)
    except PolicyUnavailableError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    except (PolicyValidationError, ValueError) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    return _policy_body(policy, store.source)


def _policy_body(policy: RiskPolicy, source: str) -> dict[str, Any]:
    return {
        "active_mode": policy.active_mode.value,
        "version": policy.version,
        "updated_by": policy.updated_by,
        "updated_at": policy.updated_at.isoformat(),
        "source": source,
        "active_config": policy.get_active_config().model_dump(mode="json"),
        "configs": {
            mode.value: config.model_dump(mode="json") for mode, config in policy.configs.items()
        },
    }


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


app = create_app()


def main() -> None:
    """Check the settings, then serve with uvicorn, its log lines in our JSON format."""
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
    # Before uvicorn starts, so its first lines ("Started server process") are ours too.
    configure_logging(
        settings.service_name, settings.log_level, json_output=settings.log_format == "json"
    )
    # uvicorn raises SIGTERM/SIGINT again once its shutdown is complete, so the process would
    # die of the signal; by then every step is undone, so exit 0, as the role processes do.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
