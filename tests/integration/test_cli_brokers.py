"""The operator CLI on Kafka, NATS and RabbitMQ: the same scenario as on Redis.

List the topics, list every event type's dead letters, show, replay and purge one, check the
broker's health, and switch the risk policy (kept in Redis, ``--policy-url``) with the
change announced on the broker's bus (tests/integration/test_cli.py does it on Redis).
"""

import asyncio
import json

import pytest

from quantum_core import EventBus, PolicyStore, RedisPolicyBackend
from quantum_core.cli import main
from quantum_core.testing import eventually

TOPIC = "orders.placed"
QUIET = "orders.cancelled"


async def run_cli(capsys, *args):
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


# broker: (its URL fixture, its prefix fixture, the bus's own URL options, health's check)
BROKERS = {
    "kafka": ("kafka_url", "kafka_prefix", "&session_timeout=2", "kafka"),
    "nats": ("nats_url", "nats_prefix", "", "nats"),
    "rabbitmq": ("amqp_url", "rabbitmq_prefix", "", "rabbitmq"),
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request):
    """The broker's URL, a fresh prefix on it, the URL of a bus under it, its health check."""
    url_fixture, prefix_fixture, options, check = BROKERS[request.param]
    broker_url = request.getfixturevalue(url_fixture)  # sync: async fixtures set up here
    prefix = request.getfixturevalue(prefix_fixture)
    bus_url = f"{broker_url}{'&' if '?' in broker_url else '?'}prefix={prefix}{options}"
    return broker_url, prefix, bus_url, check


async def test_the_operator_scenario_on_every_broker(capsys, broker):
    broker_url, prefix, url, check = broker
    fixed = False
    handled: list[int] = []

    async def fragile(payload):
        if not fixed:
            raise ValueError(f"cannot place order {payload['n']}")
        handled.append(payload["n"])

    bus = EventBus(url, service_name="execution", max_attempts=1)
    bus.subscribe(TOPIC, fragile, name="place")
    async with bus, EventBus(url, service_name="risk") as publisher:
        await publisher.publish_many(TOPIC, [{"n": 1}, {"n": 2}])
        await publisher.publish(QUIET, {"n": 0})

        async def two_letters() -> bool:
            return len(await bus.dead_letters(TOPIC)) == 2

        await eventually(two_letters, "two dead letters", timeout=15)
        cli = ("--url", broker_url, "--prefix", prefix, "--timeout", "5")

        code, out, err = await run_cli(capsys, *cli, "--json", "topics")
        assert code == 0, err
        topics = {topic["event_type"]: topic for topic in json.loads(out)}
        assert sorted(topics) == [QUIET, TOPIC]
        assert topics[TOPIC]["dead_letters"] == 2
        assert [group["name"] for group in topics[TOPIC]["groups"]] == ["execution:place"]
        assert topics[QUIET]["groups"] == []
        code, out, err = await run_cli(capsys, *cli, "topics")
        assert code == 0, err
        header, *rows = out.splitlines()
        assert header.split()[:3] == ["EVENT", "TYPE", "LENGTH"]
        assert [row.split()[0] for row in rows if not row.startswith(" ")] == [QUIET, TOPIC]
        assert any(row.split()[0] == "execution:place" for row in rows), out

        code, out, err = await run_cli(capsys, *cli, "--json", "dlq", "list")
        assert code == 0, err
        assert json.loads(out) == [
            {"event_type": QUIET, "dead_letters": 0},
            {"event_type": TOPIC, "dead_letters": 2},
        ]

        code, out, err = await run_cli(capsys, *cli, "--json", "dlq", "list", TOPIC)
        assert code == 0, err
        listed = json.loads(out)
        assert [letter["error_type"] for letter in listed] == ["ValueError", "ValueError"]
        first = listed[0]

        code, out, err = await run_cli(capsys, *cli, "dlq", "show", TOPIC, first["id"])
        assert code == 0, err
        assert "cannot place order" in out

        code, out, err = await run_cli(capsys, *cli, "dlq", "list", "orders.unknown")
        assert code == 1
        assert "unknown event type 'orders.unknown'" in err

        fixed = True
        code, out, err = await run_cli(capsys, *cli, "dlq", "replay", TOPIC, first["id"])
        assert code == 0, err
        assert f"replayed dead letter {first['id']}" in out

        async def replayed() -> bool:
            return len(handled) == 1

        await eventually(replayed, "the replayed event handled", timeout=15)
        code, out, err = await run_cli(capsys, *cli, "dlq", "purge", TOPIC)
        assert code == 2  # not a terminal: --yes is needed
        assert "pass --yes" in err
        code, out, err = await run_cli(capsys, *cli, "dlq", "purge", TOPIC, "--yes")
        assert (code, out.strip()) == (0, f"purged 1 dead letter(s) of {TOPIC!r}"), err
        assert await bus.dead_letters(TOPIC) == []

        code, out, err = await run_cli(capsys, *cli, "--json", "health")
        assert code == 0, err
        report = json.loads(out)
        assert report["status"] == "HEALTHY"
        assert list(report["dependencies"]) == [check]


async def test_policy_commands_use_the_policy_url_and_announce_on_the_brokers_bus(
    capsys, broker, redis_url, redis_prefix
):
    broker_url, prefix, url, _ = broker
    policy_prefix = f"{redis_prefix}:policy"
    announced: list[dict] = []

    async def on_mode(payload):
        announced.append(payload)

    listener = EventBus(url, service_name="risk")
    listener.subscribe("policy.mode.changed", on_mode, name="on_mode")
    backend = RedisPolicyBackend(redis_url, key_prefix=policy_prefix)
    async with listener, PolicyStore(backend) as store:
        cli = ("--url", broker_url, "--prefix", prefix, "--timeout", "5")
        policy = ("--policy-url", redis_url, "--policy-prefix", policy_prefix)
        code, out, err = await run_cli(capsys, *cli, *policy, "policy", "show", "--json")
        assert code == 0, err
        assert json.loads(out)["active_mode"] == "NORMAL"

        code, out, err = await run_cli(
            capsys, *cli, *policy, "policy", "switch", "DEFENSIVE", "--by", "alice"
        )
        assert code == 0, err

        async def switched() -> bool:
            return store.policy.active_mode.value == "DEFENSIVE" and bool(announced)

        await eventually(switched, "the switch followed and announced on the broker", timeout=15)
        assert (announced[0]["previous_mode"], announced[0]["active_mode"]) == (
            "NORMAL",
            "DEFENSIVE",
        )

        code, out, err = await run_cli(capsys, *cli, "--policy-url", broker_url, "policy", "show")
        assert code == 2
        assert "--policy-url must name a Redis" in err
