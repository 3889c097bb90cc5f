"""The quantum-core CLI against the real Redis: in-process through main(), and as a program.

Data is made with the library (a bus whose handler always fails, a PolicyStore) under the
test's own prefix; the CLI runs in a worker thread (main() runs its own event loop) while
the test's buses keep running in the test's loop.
"""

import asyncio
import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as redis

import quantum_core
from quantum_core import (
    EventBus,
    PolicyStore,
    RedisPolicyBackend,
    RedisStreamsTransport,
    get_logger,
)
from quantum_core.cli import main
from quantum_core.testing import EventRecorder, eventually
from service_helpers import free_port

TOPIC = "orders.placed"
SECRET = "s3cret-pass-42"  # noqa: S105 - a fake password that must never be printed
CONSOLE_SCRIPT = Path(sys.executable).with_name("quantum-core")


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def assert_one_line_error(self, code, *fragments):
        assert self.code == code, (self.code, self.out, self.err)
        assert self.out == ""
        [line] = self.err.splitlines()
        assert line.startswith("quantum-core: error: ")
        assert "Traceback" not in self.err
        for fragment in fragments:
            assert fragment in line


@pytest.fixture(autouse=True)
def _library_logs_to_a_buffer(log_lines):
    """Keep the test's own buses' log lines out of the captured stdout and stderr."""
    return log_lines


@pytest.fixture
def cli(capsys, redis_url, redis_prefix):
    """Run main() in-process with the test's URL and prefixes; return code and output."""

    async def run(*args, url=redis_url, prefixes=True):
        argv = ["--url", url] if url is not None else []
        if prefixes:
            argv += ["--prefix", redis_prefix, "--policy-prefix", f"{redis_prefix}:policy"]
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
async def transport(redis_url, redis_prefix):
    transport = RedisStreamsTransport(redis_url, prefix=redis_prefix)
    yield transport
    await transport.close()


@pytest.fixture
async def dead_letters(transport):
    """Two events of TOPIC that exec:execute gave up on after its one attempt."""

    async def execute(payload):
        raise ValueError(f"venue rejected order {payload['n']}")

    bus = EventBus(transport, service_name="exec", max_attempts=1)
    bus.subscribe(TOPIC, execute, name="execute")
    async with bus:
        await bus.publish_many(TOPIC, [{"n": 1}, {"n": 2}])

        async def both_dead():
            return len(await bus.dead_letters(TOPIC)) == 2

        await eventually(both_dead, timeout=5)
        return await bus.dead_letters(TOPIC)


@pytest.fixture
async def policy_store(redis_url, redis_prefix):
    store = PolicyStore(RedisPolicyBackend(redis_url, key_prefix=f"{redis_prefix}:policy"))
    await store.initialize()
    yield store
    await store.close()


# -- streams ------------------------------------------------------------------------------


async def test_streams_table_and_json(cli, transport, dead_letters, redis_prefix):
    release = asyncio.Event()

    async def hold(payload):
        await release.wait()

    risk = EventBus(transport, service_name="risk", consumer_name="risk-pod-0")
    risk.subscribe(TOPIC, hold, name="hold")
    async with risk:
        try:
            await risk.publish(TOPIC, {"n": 3})

            async def held():
                return (await risk.backlog())[f"{TOPIC} -> hold"].pending == 1

            await eventually(held, timeout=5)
            table = await cli("streams")
            as_json = await cli("streams", "--json")  # options may follow the command
        finally:
            release.set()

    assert (table.code, table.err) == (0, "")
    header, *rows = table.out.splitlines()
    assert header.startswith("EVENT TYPE  ")
    assert header.split()[-4:] == ["CONSUMER", "PENDING", "LAG", "IDLE"]
    assert rows[0].split() == [TOPIC, "3", "2"]
    assert any(row.split()[:3] == ["exec:execute", "0", "1"] for row in rows)  # 3rd not read
    assert any(row.split()[:3] == ["risk:hold", "1", "0"] for row in rows)
    assert any(row.split()[:2] == ["risk-pod-0", "1"] for row in rows)

    assert as_json.code == 0
    [stream] = as_json.json()
    assert stream["event_type"] == TOPIC
    assert stream["stream"] == f"{redis_prefix}:stream:{TOPIC}"
    assert (stream["length"], stream["dead_letters"]) == (3, 2)
    groups = {group["name"]: group for group in stream["groups"]}
    assert set(groups) == {"exec:execute", "risk:hold"}
    assert (groups["exec:execute"]["pending"], groups["exec:execute"]["lag"]) == (0, 1)
    assert groups["exec:execute"]["consumers"] == []  # a stopped bus leaves no consumer
    assert (groups["risk:hold"]["pending"], groups["risk:hold"]["lag"]) == (1, 0)
    [consumer] = groups["risk:hold"]["consumers"]
    assert consumer.keys() == {"name", "pending", "idle_ms"}
    assert (consumer["name"], consumer["pending"]) == ("risk-pod-0", 1)


async def test_streams_under_an_empty_prefix_and_the_urls_own_prefix(
    cli, dead_letters, redis_url, redis_prefix, monkeypatch
):
    empty = await cli("--prefix", f"{redis_prefix}-nothing", "streams", prefixes=False)
    assert empty.code == 0
    assert f"no event types under prefix '{redis_prefix}-nothing'" in empty.out
    assert (await cli("--prefix", f"{redis_prefix}-nothing", "--json", "streams")).json() == []

    monkeypatch.setenv("REDIS_URL", f"{redis_url}?prefix={redis_prefix}")
    from_env = await cli("streams", "--json", url=None, prefixes=False)
    assert [stream["event_type"] for stream in from_env.json()] == [TOPIC]


async def test_topics_is_streams_by_the_other_brokers_word(cli, dead_letters):
    topics = await cli("topics", "--json")
    assert topics.code == 0
    assert topics.json() == (await cli("streams", "--json")).json()
    assert [stream["event_type"] for stream in topics.json()] == [TOPIC]


# -- dead letters -------------------------------------------------------------------------


async def test_dlq_list_without_an_event_type_counts_every_event_types_dead_letters(
    cli, transport, dead_letters, redis_prefix
):
    bus = EventBus(transport, service_name="exec")
    async with bus:
        await bus.publish("orders.cancelled", {"n": 1})  # an event type without dead letters

    table = await cli("dlq", "list")
    assert table.code == 0, table.err
    header, *rows = table.out.splitlines()
    assert header.split() == ["EVENT", "TYPE", "DEAD"]
    assert [row.split() for row in rows] == [["orders.cancelled", "0"], [TOPIC, "2"]]
    assert (await cli("--json", "dlq", "list")).json() == [
        {"event_type": "orders.cancelled", "dead_letters": 0},
        {"event_type": TOPIC, "dead_letters": 2},
    ]
    empty = await cli("--prefix", f"{redis_prefix}-nothing", "dlq", "list", prefixes=False)
    assert empty.code == 0
    assert "no event types under prefix" in empty.out


async def test_dlq_list_and_show(cli, dead_letters):
    first, second = dead_letters

    table = await cli("dlq", "list", TOPIC)
    assert table.code == 0
    header, *rows = table.out.splitlines()
    assert header.split()[:4] == ["ID", "FAILED", "AT", "GROUP"]
    assert [row.split()[0] for row in rows] == [first.id, second.id]
    assert all("exec:execute" in row and "ValueError: venue rejected" in row for row in rows)

    listed = (await cli("dlq", "list", TOPIC, "--json")).json()
    assert listed == [dataclasses.asdict(first), dataclasses.asdict(second)]
    page = await cli("dlq", "list", TOPIC, "--limit", "1")
    assert f"--after {first.id}" in page.out
    assert [
        d["id"] for d in (await cli("--json", "dlq", "list", TOPIC, "--after", first.id)).json()
    ] == [second.id]

    shown = await cli("dlq", "show", TOPIC, first.id)
    assert shown.code == 0
    assert first.event_id in shown.out
    assert f"ValueError: {first.error}" in shown.out
    assert "traceback:" in shown.out
    assert "raise ValueError" in shown.out
    assert '"payload": {' in shown.out  # the original envelope, indented
    assert (await cli("dlq", "show", TOPIC, first.id, "--json")).json() == dataclasses.asdict(first)


async def test_dlq_masks_secrets_of_the_original_event_alike_in_table_and_json(cli, transport):
    """A payload's secret-looking fields are masked in every form ``dlq`` prints them."""
    secrets = {"api_key": "AKIA-live-77", "password": SECRET, "auth": "tok-9f8e7d6c"}

    async def execute(payload):
        raise ValueError("venue rejected")

    bus = EventBus(transport, service_name="exec", max_attempts=1)
    bus.subscribe(TOPIC, execute, name="execute")
    async with bus:
        await bus.publish(
            TOPIC, {"n": 1, "account": secrets}, headers={"authorization": "Bearer k"}
        )

        async def dead():
            return len(await bus.dead_letters(TOPIC)) == 1

        await eventually(dead, timeout=5)
        (letter,) = await bus.dead_letters(TOPIC)

    table = await cli("dlq", "show", TOPIC, letter.id)
    shown = (await cli("dlq", "show", TOPIC, letter.id, "--json")).json()
    (listed,) = (await cli("dlq", "list", TOPIC, "--json")).json()
    for text in (table.out, json.dumps(shown), json.dumps(listed)):
        for value in (*secrets.values(), "Bearer k"):
            assert value not in text
    assert shown == listed
    in_table = json.loads(table.out.split("original event:\n", 1)[1])  # the indented block
    assert json.loads(shown["original"]) == in_table  # the same masking in both
    assert in_table["payload"] == {
        "n": 1,
        "account": {"api_key": "***", "password": "***", "auth": "***"},
    }
    assert in_table["headers"]["authorization"] == "***"


async def test_dlq_replay_reaches_the_fixed_handler_once(cli, transport, dead_letters):
    first, second = dead_letters
    fixed = EventRecorder()
    other = EventRecorder()
    exec_bus = EventBus(transport, service_name="exec")
    exec_bus.subscribe(TOPIC, fixed, name="execute")  # the group that gave up: exec:execute
    audit_bus = EventBus(transport, service_name="audit")
    audit_bus.subscribe(TOPIC, other, name="record", from_beginning=True)
    async with exec_bus, audit_bus:
        await other.wait_for(2)  # the audit group has seen both originals
        replayed = await cli("dlq", "replay", TOPIC, first.id, "--json")
        assert replayed.code == 0, replayed.err
        assert replayed.json() == {
            "event_type": TOPIC,
            "dead_letter_id": first.id,
            "event_id": first.event_id,
            "group": "exec:execute",
        }
        assert await fixed.wait_for(1) == [{"n": 1}]
        human = await cli("dlq", "replay", TOPIC, second.id)
        assert human.out.startswith(f"replayed dead letter {second.id} of '{TOPIC}' as event ")
        assert await fixed.wait_for(2) == [{"n": 1}, {"n": 2}]
    assert len(other.payloads) == 2  # the replays were for exec:execute only
    assert (await cli("dlq", "list", TOPIC, "--json")).json() == []
    (await cli("dlq", "replay", TOPIC, first.id)).assert_one_line_error(
        1, f"no dead letter '{first.id}'"
    )


class _Terminal(io.StringIO):
    def isatty(self):
        return True


async def test_dlq_purge_asks_on_a_terminal_and_requires_yes_otherwise(
    cli, dead_letters, monkeypatch
):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    refused = await cli("dlq", "purge", TOPIC)
    refused.assert_one_line_error(2, "pass --yes", "2 dead letter(s)")

    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    declined = await cli("dlq", "purge", TOPIC)
    assert declined.code == 1
    assert "delete all 2 dead letter(s)" in declined.err
    assert "nothing deleted" in declined.err
    assert len((await cli("dlq", "list", TOPIC, "--json")).json()) == 2

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    confirmed = await cli("dlq", "purge", TOPIC)
    assert (confirmed.code, confirmed.out) == (0, f"purged 2 dead letter(s) of '{TOPIC}'\n")

    again = await cli("dlq", "purge", TOPIC, "--yes", "--json")
    assert again.json() == {"event_type": TOPIC, "purged": 0}
    assert (await cli("dlq", "list", TOPIC)).out == f"no dead letters of '{TOPIC}'\n"


async def test_dlq_purge_with_yes(cli, dead_letters, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    purged = await cli("dlq", "purge", TOPIC, "--yes", "--json")
    assert purged.json() == {"event_type": TOPIC, "purged": 2}


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["dlq", "list", "no.such.type"], 1, "unknown event type 'no.such.type'"),
        (["dlq", "show", "no.such.type", "1-0"], 1, "unknown event type"),
        (["dlq", "purge", "no.such.type", "--yes"], 1, "unknown event type"),
        (["dlq", "show", TOPIC, "1-0"], 1, "no dead letter '1-0'"),
        (["dlq", "replay", TOPIC, "1-0"], 1, "no dead letter '1-0'"),
        (["dlq", "show", TOPIC, "not-an-id"], 2, "invalid dead-letter id"),
        (["dlq", "list", "bad type!"], 2, "invalid event type"),
        (["dlq", "list", TOPIC, "--limit", "0"], 2, "--limit must be a whole number >= 1, got 0"),
        (
            ["dlq", "list", TOPIC, "--limit", "1.5"],
            2,
            "--limit must be a whole number >= 1, got '1.5'",
        ),
        (["dlq"], 2, "ACTION"),
    ],
)
async def test_dlq_errors_are_one_line(cli, dead_letters, args, code, fragment):
    (await cli(*args)).assert_one_line_error(code, fragment)


# -- policy -------------------------------------------------------------------------------


async def test_policy_show_switch_and_history(cli, policy_store, transport):
    announced = EventRecorder()
    listener = EventBus(transport, service_name="risk")
    listener.subscribe("policy.mode.changed", announced, name="on_mode")

    shown = await cli("policy", "show")
    assert shown.code == 0
    assert "NORMAL" in shown.out
    assert "max_leverage" in shown.out
    before = (await cli("policy", "show", "--json")).json()
    assert before["active_mode"] == "NORMAL"
    assert before["configs"]["DEFENSIVE"]["max_leverage"] == 3.0

    async with listener:
        switched = await cli("policy", "switch", "defensive", "--by", "alice", "--reason", "dd")
        assert switched.code == 0, switched.err
        assert switched.out == (
            f"risk mode switched NORMAL -> DEFENSIVE (version {before['version'] + 1}, by alice)\n"
        )
        [event] = await announced.wait_for(1)
    assert (event["previous_mode"], event["active_mode"]) == ("NORMAL", "DEFENSIVE")
    assert (event["updated_by"], event["reason"]) == ("alice", "dd")

    async def followed():  # the running store was told at once
        return policy_store.policy.active_mode.value == "DEFENSIVE"

    await eventually(followed, timeout=5)
    same = await cli("policy", "switch", "DEFENSIVE", "--by", "bob", "--json")
    assert same.json() == {
        "previous_mode": "DEFENSIVE",
        "active_mode": "DEFENSIVE",
        "version": before["version"] + 1,
        "changed": False,
    }

    history = (await cli("policy", "history", "--json")).json()
    assert [(c["action"], c["updated_by"], c["reason"]) for c in history][:1] == [
        ("mode", "alice", "dd")
    ]
    assert history[0]["new"] == {"active_mode": "DEFENSIVE"}
    assert history[-1]["action"] == "initial"
    table = await cli("policy", "history", "--limit", "1")
    [_, row] = table.out.splitlines()
    assert "alice" in row
    assert "active_mode: NORMAL -> DEFENSIVE" in row
    assert row.endswith("dd")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["policy", "switch", "DEFENSIVE"], 2, "--by"),
        (["policy", "switch", "YOLO", "--by", "alice"], 2, "unknown risk mode 'YOLO'"),
        (["policy", "switch", "DEFENSIVE", "--by", " "], 2, "--by"),
        (["policy", "history", "--limit", "0"], 2, "--limit must be a whole number >= 1, got 0"),
        (["policy", "history", "--limit", "10001"], 2, "--limit must be at most 10000, got 10001"),
        (["policy"], 2, "ACTION"),
    ],
)
async def test_policy_usage_errors_are_one_line(cli, policy_store, args, code, fragment):
    (await cli(*args)).assert_one_line_error(code, fragment)
    assert policy_store.policy.active_mode.value == "NORMAL"


@pytest.mark.parametrize("action", [["show"], ["history"], ["switch", "DEFENSIVE", "--by", "a"]])
async def test_policy_where_none_is_stored_is_refused(cli, redis_url, redis_prefix, action):
    run = await cli("--policy-prefix", f"{redis_prefix}:nowhere", "policy", *action)
    run.assert_one_line_error(1, f"no risk policy at Redis key '{redis_prefix}:nowhere:current'")
    client = redis.from_url(redis_url)
    try:  # a switch there must not have seeded a policy no service reads
        assert not await client.exists(f"{redis_prefix}:nowhere:current")
    finally:
        await client.aclose()


# -- health -------------------------------------------------------------------------------


async def test_health_of_a_healthy_redis_exits_0(cli):
    table = await cli("health")
    assert table.code == 0
    assert table.out.startswith("HEALTHY")
    assert "redis" in table.out
    report = (await cli("health", "--json")).json()
    assert report["status"] == "HEALTHY"
    assert report["dependencies"]["redis"]["status"] == "HEALTHY"
    assert "system" not in report


async def test_health_of_a_dead_port_exits_3_fast_and_masks_passwords(cli):
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    dsn = f"postgresql://trader:{SECRET}@127.0.0.1:{free_port()}/trading"
    started = time.monotonic()
    run = await cli("health", "--postgres", dsn, url=url)
    assert time.monotonic() - started < 5  # connection refused, no retries
    assert run.code == 3  # UNHEALTHY: not 2, a usage error
    assert run.out.startswith("UNHEALTHY")
    as_json = await cli("--json", "health", "--postgres", dsn, url=url)
    report = as_json.json()
    assert report["status"] == "UNHEALTHY"
    assert {name: d["status"] for name, d in report["dependencies"].items()} == {
        "redis": "UNHEALTHY",
        "postgres": "UNHEALTHY",
    }
    assert SECRET not in run.out + run.err + as_json.out + as_json.err


# -- errors -------------------------------------------------------------------------------


NOT_A_NAME = "must be a non-empty string of at most 100 printable characters without spaces"


@pytest.mark.parametrize(
    ("url", "args", "code", "fragment"),
    [
        ("localhost:6379", ["streams"], 2, "invalid Redis URL 'localhost:6379'"),
        ("memory://", ["topics"], 2, "memory:// is the in-process transport"),
        (f"redis://:{SECRET}@127.0.0.1:notaport/0", ["streams"], 2, "invalid Redis URL"),
        (f"redis://:{SECRET}@127.0.0.1:6379/zero", ["streams"], 2, "database must be a number"),
        ("redis://127.0.0.1:6379/0?bogus=1", ["streams"], 2, "invalid Redis URL"),
        (f"redis://:{SECRET}@127.0.0.1:{{dead}}/0", ["streams"], 1, "cannot reach Redis"),
        (f"redis://:{SECRET}@127.0.0.1:{{dead}}/0", ["policy", "show"], 1, "cannot reach Redis"),
        (f"redis://:{SECRET}@127.0.0.1:{{dead}}/0", ["dlq", "list", TOPIC], 1, "cannot reach"),
        (f"redis://nobody:{SECRET}@{{shared}}/0", ["streams"], 1, "refused the credentials"),
        (
            None,
            ["--timeout", "0", "streams"],
            2,
            "--timeout must be a number of seconds > 0, got 0",
        ),
        (None, ["--timeout", "nan", "streams"], 2, "--timeout must be a number of seconds > 0"),
        (None, ["--timeout", "inf", "streams"], 2, "--timeout must be a number of seconds > 0"),
        (None, ["--timeout", "301", "streams"], 2, "--timeout must be at most 300 seconds"),
        (None, ["--prefix", "has space", "streams"], 2, f"--prefix {NOT_A_NAME}, got 'has space'"),
        (None, ["--prefix", "bell\a", "streams"], 2, f"--prefix {NOT_A_NAME}"),
        (None, ["--policy-prefix", "", "streams"], 2, f"--policy-prefix {NOT_A_NAME}, got ''"),
        (None, ["nonsense"], 2, "invalid choice: 'nonsense'"),
        (None, [], 2, "COMMAND"),
    ],
)
async def test_errors_are_one_line_without_secrets(cli, redis_url, url, args, code, fragment):
    shared = redis_url.split("://", 1)[1].rsplit("/", 1)[0]
    url = redis_url if url is None else url.format(dead=free_port(), shared=shared)
    run = await cli(*args, url=url)
    run.assert_one_line_error(code, fragment)
    assert SECRET not in run.err


async def test_main_restores_the_callers_logging(cli, log_lines):
    await cli("policy", "show")  # no policy: an error, with quantum_core's logging redirected
    get_logger("test").info("after the cli")
    assert [line["event"] for line in log_lines()][-1:] == ["after the cli"]


async def test_help_and_version_return_0(cli):
    helped = await cli("--help")
    assert helped.code == 0
    assert "exit codes" in helped.out
    assert "REDIS_URL" in helped.out
    assert (await cli("dlq", "purge", "--help")).code == 0
    # the distribution's name on the package index, not the command's
    assert (await cli("--version")).out.strip() == f"quantum-core-sdk {quantum_core.__version__}"


# -- the console script -------------------------------------------------------------------


async def _program(*args, env=None):
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return Run(process.returncode, out.decode(), err.decode())


async def test_the_console_script_and_python_dash_m(dead_letters, redis_url, redis_prefix):
    assert CONSOLE_SCRIPT.exists(), "run `.venv/bin/pip install -e .` to create the script"
    env = {"REDIS_URL": redis_url}
    listed = await _program(
        str(CONSOLE_SCRIPT), "--prefix", redis_prefix, "dlq", "list", TOPIC, "--json", env=env
    )
    assert listed.code == 0, listed.err
    assert [d["id"] for d in listed.json()] == [d.id for d in dead_letters]

    refused = await _program(
        sys.executable, "-m", "quantum_core.cli", "--prefix", redis_prefix, "dlq", "purge", TOPIC,
        env=env,
    )  # fmt: skip
    refused.assert_one_line_error(2, "pass --yes")  # stdin is not a terminal

    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    down = await _program(str(CONSOLE_SCRIPT), "health", env={"REDIS_URL": url})
    assert down.code == 3
    assert "UNHEALTHY" in down.out
    assert SECRET not in down.out + down.err
    assert "Traceback" not in down.err


@pytest.mark.parametrize(
    ("url", "check"),
    [
        ("nats://user:{secret}@127.0.0.1:{port}", "nats"),
        ("amqp://guest:{secret}@127.0.0.1:{port}/", "rabbitmq"),
        ("kafka://127.0.0.1:{port}", "kafka"),
    ],
)
def test_a_broker_that_is_down_gives_one_line_or_an_unhealthy_report(capsys, url, check):
    url = url.format(secret=SECRET, port=free_port())
    code = main(["--url", url, "--timeout", "2", "topics"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.startswith("quantum-core: error: "), err
    assert err.count("\n") == 1, err
    assert SECRET not in err

    code = main(["--url", url, "--timeout", "2", "health"])
    out, err = capsys.readouterr()
    assert (code, err) == (3, "")  # nothing but the report: no broker client's own log lines
    assert out.startswith("UNHEALTHY")
    assert f"\n{check}  " in out
    assert SECRET not in out
