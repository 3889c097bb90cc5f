"""The example service's /metrics, scraped after a flow with a retry and a dead letter."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantum_core import EventBus
from quantum_core.testing import eventually
from quantum_core.testing.brokers import BROKERS, new_namespace
from service_helpers import free_port, require

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("_app_with_failing_handlers.py")
SERVICE = "metrics_app"


def samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return response.status, response.headers["Content-Type"], response.read().decode()


@pytest.fixture
def service(tmp_path):
    redis_url = require("redis")
    prefix = new_namespace()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "QUANTUM_ADMIN_TOKEN"}
    env |= {
        "PYTHONPATH": str(ROOT),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SERVICE_NAME": SERVICE,
        "REDIS_URL": redis_url,
        "BUS_URL": f"{redis_url}?prefix={prefix}",
        "POLICY_KEY_PREFIX": f"{prefix}:policy",
        "POLICY_SNAPSHOT": "off",
        "CHECK_BINANCE": "false",
    }
    with (tmp_path / "out").open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(RUNNER)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            get(f"{url}/health/live")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the app did not start: {(tmp_path / 'out').read_text()}")
            time.sleep(0.05)
    yield url, f"{redis_url}?prefix={prefix}"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    BROKERS["redis"].clean(prefix)


def group(name, **extra):
    labels = {
        "service": SERVICE,
        "event_type": "test.order",
        "group": f"{SERVICE}:{name}",
        "transport": "redis",
        **extra,
    }
    return tuple(sorted(labels.items()))


async def test_metrics_after_a_flow_with_a_retry_and_a_dead_letter(service):
    url, bus_url = service
    async with EventBus(bus_url, service_name="test-publisher") as bus:
        await bus.publish("test.order", {"order": 1})
    get(f"{url}/health")  # a report: the health metrics
    found = {}

    def scraped():
        nonlocal found
        status, content_type, text = get(f"{url}/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        found = samples(text)
        return (
            found.get(("quantum_core_dead_letters_written_total", group("broken"))) == 1
            and found.get(("quantum_core_events_handled_total", group("flaky", outcome="ok"))) == 1
        )

    await eventually(scraped, "the retry and the dead letter counted", timeout=15)
    handled = "quantum_core_events_handled_total"
    assert found[(handled, group("flaky", outcome="retried"))] == 1
    assert found[(handled, group("broken", outcome="retried"))] == 1
    assert found[(handled, group("broken", outcome="dead_lettered"))] == 1
    assert found[(handled, group("broken", outcome="ok"))] == 0
    assert found[("quantum_core_dead_letters_written_total", group("flaky"))] == 0
    assert found[("quantum_core_handler_duration_seconds_count", group("flaky"))] == 2
    assert found[("quantum_core_events_received_total", group("broken"))] >= 1
    assert found[("quantum_core_risk_mode", (("mode", "NORMAL"),))] == 1
    assert found[("quantum_core_risk_mode", (("mode", "DEFENSIVE"),))] == 0
    assert found[("quantum_core_health_status", (("check", "redis"), ("service", SERVICE)))] == 1
