"""One process per domain: the same decisions as in memory, and nothing lost on SIGTERM."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from quantum_core import EventBus, current_event

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = "quantum_core trading demo: summary"


def run_module(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def figures(stdout):
    """The summary's lines by label, without the transport (it names the run's prefix)."""
    summary = stdout[stdout.index(SUMMARY) :].splitlines()[1:]
    pairs = (re.match(r"\s+(\S+(?: \S+)?)\s{2,}(.*)", line).groups() for line in summary)
    return {label: value for label, value in pairs if label not in {"transport", "roles"}}


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
    path = tmp_path_factory.mktemp("memory") / "decisions.json"
    result = run_module(
        "examples.trading.run", "--bus", "memory://", "--interval", "0", "--decisions", str(path)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(path.read_text()), figures(result.stdout)


def test_the_seeded_feed_makes_every_kind_of_decision(in_memory):
    decisions, _ = in_memory
    assert len(decisions) == 36
    assert {row["outcome"] for row in decisions} == {"first_price", "filtered", "signal"}
    decided = [row for row in decisions if row["outcome"] == "signal"]
    assert {row["approved"] for row in decided} == {True, False}
    assert {row["risk_mode"] for row in decided} == {"NORMAL", "DEFENSIVE"}
    assert all(row["filled"] == row["quantity"] for row in decided if row["approved"])


@pytest.fixture
async def rabbitmq_queues_under(amqp_url):
    """Delete, after the test, every queue on the broker whose name starts with a prefix.

    The example's processes declare their own queues, which no fixture of this process saw.
    """
    prefixes: list[str] = []
    yield prefixes.append
    if not prefixes:
        return
    listing = await asyncio.create_subprocess_exec(
        *("rabbitmqctl", "list_queues", "--quiet", "--no-table-headers", "name"),
        stdout=subprocess.PIPE,
    )
    listed, _ = await asyncio.wait_for(listing.communicate(), 60)
    assert listing.returncode == 0, "rabbitmqctl list_queues failed"
    from quantum_core.testing.brokers import delete_rabbitmq_names

    for prefix in prefixes:
        names = {name for name in listed.decode().split() if name.startswith(f"{prefix}.")}
        await delete_rabbitmq_names(amqp_url, prefix, names)


@pytest.fixture(params=["redis", "nats", "rabbitmq", "kafka"])
def broker(request, redis_url, redis_prefix):
    """(bus URL under a prefix of the test's own, --policy URL for separate processes)."""
    policy = f"{redis_url}?prefix={redis_prefix}"
    if request.param == "redis":
        return f"{redis_url}?prefix={redis_prefix}", None
    if request.param == "kafka":
        url, prefix = (request.getfixturevalue(name) for name in ("kafka_url", "kafka_prefix"))
        # One partition per topic: the demo's decisions depend on one order across symbols
        # (one positions book), which Kafka keeps within a partition only. Configuration,
        # not code: the example runs unchanged.
        return f"{url}?prefix={prefix}&session_timeout=2&partitions=1", policy
    if request.param == "nats":
        url, prefix = (request.getfixturevalue(name) for name in ("nats_url", "nats_prefix"))
        return f"{url}?prefix={prefix}", policy
    url, prefix = (request.getfixturevalue(name) for name in ("amqp_url", "rabbitmq_prefix"))
    request.getfixturevalue("rabbitmq_queues_under")(prefix)
    return f"{url}?prefix={prefix}", policy


@pytest.mark.parametrize(
    ("module", "layout"),
    [("examples.trading.run", "one process"), ("examples.trading.split", "four processes")],
)
def test_every_broker_makes_the_same_decisions_as_memory(
    in_memory, broker, tmp_path, module, layout
):
    path = tmp_path / "decisions.json"
    bus, policy = broker
    args = ["--bus", bus, "--interval", "0", "--decisions", str(path)]
    if policy and layout == "four processes":  # processes share the policy through Redis
        args += ["--policy", policy]
    result = run_module(module, *args)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    password = urlsplit(bus).password
    if password:  # the broker's password is never shown, not even in the summary
        assert f":{password}@" not in result.stdout + result.stderr
    decisions, memory_figures = in_memory
    assert json.loads(path.read_text()) == decisions
    assert figures(result.stdout) == memory_figures
    if layout == "four processes":
        assert "market_data 0, ai_engine 0, risk_safety 0, execution 0" in result.stdout
        logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        started = {line["role"]: line["pid"] for line in logs if line["event"] == "role_started"}
        assert set(started) == {"market_data", "ai_engine", "risk_safety", "execution"}
        assert len(set(started.values())) == 4
        stopped = [line for line in logs if line["event"] == "role_stopped"]
        assert {line["service"] for line in stopped} == {f"quantum_trader.{r}" for r in started}
        assert not [line for line in logs if line["event"] == "event_handlers_cancelled_on_stop"]


def test_a_role_cannot_run_alone_on_the_memory_transport():
    result = subprocess.run(
        [sys.executable, "-m", "quantum_core.cli", "run", "examples.trading.roles:ai_engine"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "QUANTUM_DEMO_BUS": "memory://"},
    )
    assert result.returncode == 1
    assert "role ai_engine cannot use memory://" in result.stderr
    assert "redis://" in result.stderr
    assert len(result.stderr.splitlines()) == 1


class Flow:
    """The test's own view of the flow: every event, by type, with its trace id."""

    TYPES = (
        "demo.role.ready",
        "market.data.update",
        "demo.tick.handled",
        "ai.signal.generated",
        "risk.signal.approved",
        "risk.signal.rejected",
        "execution.order.filled",
    )

    def __init__(self):
        self.events = defaultdict(list)
        self.changed = asyncio.Event()

    async def on_event(self, payload):
        event = current_event()
        self.events[event.type].append((event.trace_id, payload))
        self.changed.set()

    def traces(self, event_type):
        return [trace for trace, _ in self.events[event_type]]

    def ready(self, role):
        return sum(payload["role"] == role for _, payload in self.events["demo.role.ready"])

    def settled(self, ticks):
        ticks_seen = self.traces("market.data.update")
        handled = dict(self.events["demo.tick.handled"])
        signals = set(self.traces("ai.signal.generated"))
        verdicts = self.events["risk.signal.approved"] + self.events["risk.signal.rejected"]
        approved = set(self.traces("risk.signal.approved"))
        signalled = {trace for trace, p in handled.items() if p["outcome"] == "signal"}
        return (
            len(ticks_seen) == ticks
            and set(handled) == set(ticks_seen)
            and signals == signalled
            and {trace for trace, _ in verdicts} == signals
            and set(self.traces("execution.order.filled")) == approved
        )

    async def until(self, condition, timeout=60):
        async def wait():
            while True:
                self.changed.clear()
                if condition():
                    return
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def start_role(role, bus_url, log_dir, **settings):
    """``quantum-core run examples.trading.roles:<role>``, as a process manager runs it."""
    log = (log_dir / f"{role}-{len(list(log_dir.iterdir()))}.log").open("w")
    env = {**os.environ, "QUANTUM_DEMO_BUS": bus_url}
    env |= {f"QUANTUM_DEMO_{name.upper()}": str(value) for name, value in settings.items()}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "quantum_core.cli", "run", f"examples.trading.roles:{role}"),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    process.log_path = Path(log.name)
    return process


async def stop_role(process):
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 60)


def log_events(process):
    lines = process.log_path.read_text().splitlines()
    return [json.loads(line)["event"] for line in lines if line.startswith("{")]


async def test_a_role_stopped_mid_flow_drains_and_its_successor_loses_nothing(
    redis_url, redis_prefix, tmp_path
):
    ticks = 60
    bus_url = f"{redis_url}?prefix={redis_prefix}&claim_idle=1"
    flow = Flow()
    observer = EventBus(bus_url, service_name="test-observer")
    for event_type in Flow.TYPES:
        observer.subscribe(event_type, flow.on_event, name="flow", concurrency=1)
    roles = {}
    async with observer:
        try:
            for role in ("ai_engine", "risk_safety", "execution"):
                roles[role] = await start_role(role, bus_url, tmp_path)
            await flow.until(lambda: all(flow.ready(role) for role in roles))
            roles["market_data"] = await start_role(
                "market_data", bus_url, tmp_path, ticks=ticks, interval=0.02
            )
            await flow.until(lambda: len(flow.events["demo.tick.handled"]) >= 10)

            first_engine = roles.pop("ai_engine")  # SIGTERM while ticks keep coming
            assert await stop_role(first_engine) == 0
            events = log_events(first_engine)
            assert events[-2:] == ["role_stopped", "app_stopped"]
            assert "event_handlers_cancelled_on_stop" not in events
            handled_by_first = len(flow.events["demo.tick.handled"])
            assert handled_by_first < ticks

            roles["ai_engine"] = await start_role("ai_engine", bus_url, tmp_path)
            await flow.until(lambda: flow.settled(ticks))
        finally:
            exit_codes = {role: await stop_role(process) for role, process in roles.items()}
    assert exit_codes == dict.fromkeys(roles, 0)
    # Every tick was handled once: none lost in the hand-over, none handled twice.
    handled = Counter(flow.traces("demo.tick.handled"))
    assert set(handled) == set(flow.traces("market.data.update"))
    assert set(handled.values()) == {1}
    assert flow.events["execution.order.filled"]
