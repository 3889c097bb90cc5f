"""``quantum-core dlq`` on Kafka, NATS and RabbitMQ: list, show, replay and purge dead letters.

The same operator scenario as on Redis (tests/integration/test_cli.py), through each
transport's dead-letter abilities.
"""

import asyncio
import json

import pytest

from quantum_core import EventBus
from quantum_core.cli import main
from quantum_core.testing import eventually

TOPIC = "orders.placed"


async def run_cli(capsys, *args):
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


# broker: (its URL fixture, its prefix fixture, the bus's own URL options)
BROKERS = {
    "kafka": ("kafka_url", "kafka_prefix", "&session_timeout=2"),
    "nats": ("nats_url", "nats_prefix", ""),
    "rabbitmq": ("amqp_url", "rabbitmq_prefix", ""),
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request):
    """The broker's URL, a fresh prefix on it, and the URL of a bus under that prefix."""
    url_fixture, prefix_fixture, options = BROKERS[request.param]
    broker_url = request.getfixturevalue(url_fixture)  # sync: async fixtures set up here
    prefix = request.getfixturevalue(prefix_fixture)
    bus_url = f"{broker_url}{'&' if '?' in broker_url else '?'}prefix={prefix}{options}"
    return broker_url, prefix, bus_url


async def test_dlq_lists_shows_replays_and_purges_dead_letters(capsys, broker):
    broker_url, prefix, url = broker
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

        async def two_letters() -> bool:
            return len(await bus.dead_letters(TOPIC)) == 2

        await eventually(two_letters, "two dead letters", timeout=15)
        cli = ("--url", broker_url, "--prefix", prefix, "--timeout", "5")

        code, out, err = await run_cli(capsys, *cli, "--json", "dlq", "list", TOPIC)
        assert code == 0, err
        listed = json.loads(out)
        assert [letter["error_type"] for letter in listed] == ["ValueError", "ValueError"]
        first = listed[0]

        code, out, err = await run_cli(capsys, *cli, "dlq", "show", TOPIC, first["id"])
        assert code == 0, err
        assert "cannot place order" in out

        fixed = True
        code, out, err = await run_cli(capsys, *cli, "dlq", "replay", TOPIC, first["id"])
        assert code == 0, err
        assert f"replayed dead letter {first['id']}" in out

        async def replayed() -> bool:
            return len(handled) == 1

        await eventually(replayed, "the replayed event handled", timeout=15)
        code, out, err = await run_cli(capsys, *cli, "dlq", "purge", TOPIC, "--yes")
        assert (code, out.strip()) == (0, f"purged 1 dead letter(s) of {TOPIC!r}"), err
        assert await bus.dead_letters(TOPIC) == []

        code, out, err = await run_cli(capsys, *cli, "streams")
        assert code == 2
        assert "only `quantum-core dlq` works" in err
