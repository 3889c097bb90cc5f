"""The FastAPI service, run as `python -m examples.trading.app` and called over HTTP."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import pytest

import quantum_core
from quantum_core import EventBus
from quantum_core.models import MarketDataEvent
from quantum_core.testing.brokers import BROKERS, new_namespace
from service_helpers import REDIS_URL, free_port, require

ROOT = Path(__file__).resolve().parents[2]
TOKEN = f"test-admin-{uuid.uuid4().hex}"
API_KEY = "AKEYtest0123456789abcdefghij"
API_SECRET = f"api-secret-{uuid.uuid4().hex}"
SWITCH = {"mode": "DEFENSIVE", "updated_by": "test-operator", "reason": "test"}


class App:
    """The service in a process of its own, on a free port, its output in files."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path, self.stderr_path = tmp_path / "stdout", tmp_path / "stderr"
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in {"QUANTUM_ADMIN_TOKEN", "BINANCE_API_KEY", "BINANCE_API_SECRET"}
        }
        environment |= {"HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "INFO"}
        environment |= {"POLICY_SNAPSHOT": "off", "LOG_FORMAT": "json"}
        environment |= {key: value for key, value in env.items() if value is not None}
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "examples.trading.app"],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=err,
            )
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the app exited with {self.process.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/live", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"the app did not answer within {timeout} s: {self.output()}")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self):
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def log_lines(self):
        return [json.loads(line) for line in self.stdout_path.read_text().splitlines()]


@pytest.fixture(scope="module")
def prefix():
    require("redis")
    name = new_namespace()
    yield name
    BROKERS["redis"].clean(name)


@pytest.fixture(scope="module")
def app(prefix, tmp_path_factory):
    """One service for the module: Redis for everything, an admin token, no internet."""
    service = App(
        tmp_path_factory.mktemp("app"),
        REDIS_URL=REDIS_URL,
        BUS_URL=f"{REDIS_URL}?prefix={prefix}",
        POLICY_KEY_PREFIX=f"{prefix}:policy",
        BINANCE_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nobody listens: refused at once
        BINANCE_API_KEY=API_KEY,
        BINANCE_API_SECRET=API_SECRET,
        QUANTUM_ADMIN_TOKEN=TOKEN,
    )
    yield service
    service.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def test_health_reports_every_dependency_and_hides_the_keys(app, http):
    async with http.get(f"{app.url}/health") as response:
        text = await response.text()
        assert response.status == 200
    report = json.loads(text)
    assert {"service", "status", "version", "timestamp", "uptime_seconds", "dependencies"} <= set(
        report
    )
    assert report["service"] == "quantum_trader"
    assert report["version"] == "2.0.0"  # the application's, given to the checker
    assert report["quantum_core_version"] == quantum_core.__version__
    assert report["status"] == "DEGRADED"  # the exchange is down, and it is not critical
    dependencies = report["dependencies"]
    assert dependencies["redis"]["status"] == "HEALTHY"
    assert dependencies["redis"]["critical"] is True
    assert dependencies["event_bus"]["status"] == "HEALTHY"
    exchange = dependencies["binance_rest"]
    assert exchange["status"] == "UNHEALTHY"
    assert exchange["critical"] is False
    assert "cannot reach" in exchange["error"]
    assert exchange["key_hint"].startswith(API_KEY[:4])
    assert report["system"]["status"] in {"HEALTHY", "DEGRADED"}
    assert API_KEY not in text
    assert API_SECRET not in text
    assert TOKEN not in text


async def test_liveness_touches_nothing_and_readiness_checks_dependencies(app, http):
    async with http.get(f"{app.url}/health/live") as response:
        assert response.status == 200
        live = await response.json()
    assert live["status"] == "HEALTHY"
    assert live["dependencies"] == {}
    async with http.get(f"{app.url}/health/ready") as response:
        assert response.status == 200
        ready = await response.json()
    assert ready["dependencies"]["redis"]["status"] == "HEALTHY"


async def test_policy_is_readable_without_a_token(app, http):
    async with http.get(f"{app.url}/policy") as response:
        assert response.status == 200
        policy = await response.json()
    assert policy["active_mode"] in {"AGGRESSIVE", "NORMAL", "DEFENSIVE"}
    assert policy["source"] == "backend"
    assert set(policy["configs"]) == {"AGGRESSIVE", "NORMAL", "DEFENSIVE"}
    assert policy["active_config"] == policy["configs"][policy["active_mode"]]


async def test_switch_without_a_bearer_token_is_401(app, http):
    async with http.post(f"{app.url}/policy/mode", json=SWITCH) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    async with http.post(f"{app.url}/policy/mode", json=SWITCH, headers=basic) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    "token",
    [TOKEN[:-1] + "x", TOKEN + "x", TOKEN[:-1], "x"],
    ids=["last-character-wrong", "one-too-long", "one-too-short", "other"],
)
async def test_switch_with_a_wrong_token_is_403(app, http, token):
    async with http.post(f"{app.url}/policy/mode", json=SWITCH, headers=bearer(token)) as response:
        assert response.status == 403
    async with http.get(f"{app.url}/policy") as response:
        assert (await response.json())["updated_by"] != "test-operator"


async def test_switch_with_a_bad_body_is_422(app, http):
    body = {"mode": "RECKLESS", "updated_by": "test-operator"}
    async with http.post(f"{app.url}/policy/mode", json=body, headers=bearer(TOKEN)) as response:
        assert response.status == 422


async def test_switch_with_the_token_changes_what_the_domains_decide(app, http, prefix):
    """0.75 passes NORMAL's 0.70 floor; after the switch, 0.748 is below DEFENSIVE's 0.80."""
    signals = asyncio.Queue()

    async def on_signal(payload):
        if payload["symbol"] == "QCTEST":
            await signals.put(payload["confidence"])

    observer = EventBus(f"{REDIS_URL}?prefix={prefix}", service_name="test-observer")
    observer.subscribe("ai.signal.generated", on_signal, concurrency=1)
    normal = {"mode": "NORMAL", "updated_by": "test-operator"}
    async with http.post(f"{app.url}/policy/mode", json=normal, headers=bearer(TOKEN)) as response:
        assert response.status == 200
    async with observer:
        for price in (100.0, 100.8):  # +0.8%: confidence 0.75
            await observer.publish(
                "market.data.update", MarketDataEvent(symbol="QCTEST", price=price)
            )
        assert await asyncio.wait_for(signals.get(), 30) == pytest.approx(0.75)

        async with http.post(
            f"{app.url}/policy/mode", json=SWITCH, headers=bearer(TOKEN)
        ) as response:
            assert response.status == 200
            assert (await response.json())["active_mode"] == "DEFENSIVE"
        async with http.get(f"{app.url}/policy") as response:
            policy = await response.json()
        assert policy["active_mode"] == "DEFENSIVE"
        assert policy["updated_by"] == "test-operator"
        assert policy["active_config"]["global_min_confidence"] == 0.8

        await observer.publish(  # +0.79%: confidence 0.748, filtered
            "market.data.update", MarketDataEvent(symbol="QCTEST", price=101.6)
        )
        await observer.publish(  # +2.4%: confidence 0.95, passes; it comes after the other
            "market.data.update", MarketDataEvent(symbol="QCTEST", price=104.0)
        )
        # Ticks are handled one at a time: had the first passed, its signal would come first.
        assert await asyncio.wait_for(signals.get(), 30) == 0.95


async def test_the_endpoint_is_disabled_without_a_token_and_health_is_503_without_redis(
    tmp_path, http
):
    service = App(
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nobody listens
        BUS_URL="memory://",
        CHECK_BINANCE="false",
        HEALTH_TIMEOUT="0.5",
    )
    try:
        for headers in ({}, bearer(TOKEN)):
            async with http.post(
                f"{service.url}/policy/mode", json=SWITCH, headers=headers
            ) as response:
                assert response.status == 404
                assert "QUANTUM_ADMIN_TOKEN" in (await response.json())["detail"]
        async with http.get(f"{service.url}/health") as response:
            assert response.status == 503
            report = await response.json()
        assert report["status"] == "UNHEALTHY"
        assert report["dependencies"]["redis"]["status"] == "UNHEALTHY"
        assert "binance_rest" not in report["dependencies"]
        async with http.get(f"{service.url}/health/ready") as response:
            assert response.status == 503
        async with http.get(f"{service.url}/health/live") as response:
            assert response.status == 200
        async with http.get(f"{service.url}/policy") as response:  # the defaults, served
            assert response.status == 200
            assert (await response.json())["source"] == "defaults"
    finally:
        assert service.stop() == 0
    assert service.stderr_path.read_text() == ""


async def test_a_switch_is_503_when_redis_is_down(tmp_path, http):
    service = App(
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nobody listens
        BUS_URL="memory://",
        CHECK_BINANCE="false",
        QUANTUM_ADMIN_TOKEN=TOKEN,
    )
    try:
        async with http.post(
            f"{service.url}/policy/mode", json=SWITCH, headers=bearer(TOKEN)
        ) as response:
            assert response.status == 503
            assert (await response.json())["detail"]
        async with http.get(f"{service.url}/policy") as response:
            assert (await response.json())["active_mode"] == "NORMAL"  # nothing switched
    finally:
        assert service.stop() == 0


def test_bad_settings_stop_the_service_before_it_starts():
    env = {**os.environ, "LOG_LEVEL": "verbose", "QUANTUM_ADMIN_TOKEN": "short-secret"}
    env |= {"REDIS_URL": "http://user:hunter2@localhost"}
    result = subprocess.run(
        [sys.executable, "-m", "examples.trading.app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "LOG_LEVEL" in result.stderr
    assert "REDIS_URL: expected a redis://" in result.stderr
    assert "QUANTUM_ADMIN_TOKEN: must be at least 16 characters" in result.stderr
    assert "short-secret" not in result.stderr
    assert "hunter2" not in result.stderr


def test_sigterm_shuts_down_cleanly_and_every_log_line_is_json(app):
    """Runs last in this module: it stops the module's service."""
    assert app.stop() == 0
    assert app.stderr_path.read_text() == ""
    lines = app.log_lines()  # every line parses
    events = [(line.get("logger"), line["event"]) for line in lines]
    assert ("uvicorn.error", "Application startup complete.") in events
    assert ("examples.trading.app", "service_started") in events
    assert ("examples.trading.app", "service_stopped") in events
    assert any(logger == "uvicorn.access" for logger, _ in events)
    refused = [line for line in lines if line["event"] == "admin_request_refused"]
    assert {line["reason"] for line in refused} == {"missing_credentials", "invalid_credentials"}
    switched = [line for line in lines if line["event"] == "risk_mode_switched"]
    assert switched[-1]["active_mode"] == "DEFENSIVE"
    output = app.output()
    for secret in (TOKEN, API_SECRET, API_KEY):
        assert secret not in output
