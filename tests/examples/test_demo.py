"""`make demo` as a newcomer sees it: the flow runs in memory and prints a summary."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ROOT / "examples" / "trading" / "domains"


@pytest.fixture(scope="module")
def demo_run():
    result = subprocess.run(
        [sys.executable, "-m", "examples.trading.run", "--bus", "memory://", "--interval", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summary = result.stdout[result.stdout.index("quantum_core trading demo: summary") :]
    return logs, summary, result.stderr


def figure(summary, label):
    return int(re.search(rf"{label}\s+(\d+)", summary).group(1))


def test_demo_prints_a_summary_of_a_busy_flow(demo_run):
    _, summary, stderr = demo_run
    assert stderr == ""
    assert figure(summary, "market ticks") == 36
    signals, approvals = figure(summary, "signals"), figure(summary, "approvals")
    rejections, orders = figure(summary, "rejections"), figure(summary, "orders filled")
    assert signals == approvals + rejections
    assert orders == approvals > 0
    assert rejections > 0
    assert re.search(r"NORMAL \d+, DEFENSIVE \d+", summary)
    assert "final mode      DEFENSIVE" in summary


def test_defensive_mode_filters_signals(demo_run):
    logs, summary, _ = demo_run
    filtered = [line for line in logs if line["event"] == "signal_filtered_low_confidence"]
    assert {line["mode"] for line in filtered} >= {"DEFENSIVE"}
    normal = int(re.search(r"NORMAL (\d+)", summary).group(1))
    defensive = int(re.search(r"DEFENSIVE (\d+)", summary).group(1))
    assert defensive < normal


def test_every_order_log_line_shares_the_trace_of_its_market_tick(demo_run):
    logs, summary, _ = demo_run
    orders, total = map(int, re.search(r"trace chains\s+(\d+)/(\d+)", summary).groups())
    assert orders == total > 0
    tick_traces = {
        line["trace_id"]
        for line in logs
        if line["event"] == "market_data_received" and line.get("domain") == "ai_engine"
    }
    order_lines = [line for line in logs if line["event"] in {"order_submitted", "order_filled"}]
    assert len(order_lines) == 2 * total
    assert all(line["trace_id"] in tick_traces for line in order_lines)
    for line in order_lines:  # the chain: tick -> signal -> approval -> order, one trace id
        chain = {other["event"] for other in logs if other.get("trace_id") == line["trace_id"]}
        assert {"market_data_received", "signal_generated", "trade_approved"} <= chain


def test_domain_code_imports_no_transport_or_broker_library():
    forbidden = ("redis", "nats", "aio_pika", "aiormq", "quantum_core.bus", "asyncpg")
    for path in DOMAINS.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


def test_the_policy_url_keeps_none_of_the_bus_transports_own_options():
    """Every option the Redis transport reads from its URL is left out of redis-py's."""
    script = """
from examples.trading.run import policy_location
from quantum_core.transports.redis.url import split_options

url, prefix = policy_location(
    "redis://127.0.0.1:6379/0?prefix=t&maxlen=9&max_age=60&claim_idle=5"
    "&wait_replicas=0&socket_timeout=2"
)
print(prefix, split_options(url))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t:policy ('redis://127.0.0.1:6379/0?socket_timeout=2', {})"
