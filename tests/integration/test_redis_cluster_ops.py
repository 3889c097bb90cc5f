"""Operating on a Redis Cluster: a client passed in, the CLI, the health check, bad input."""

import asyncio
import json
import time

import pytest
from redis.asyncio.cluster import RedisCluster

from quantum_core import (
    EventBus,
    RedisStreamsTransport,
    initialize_health_checker,
    initialize_policy_store,
    shutdown_health_checker,
    shutdown_policy_store,
)
from quantum_core.cli import main
from quantum_core.errors import TransportError
from quantum_core.health import HealthStatus, RedisCheck
from quantum_core.policy import PolicyStore, RedisPolicyBackend
from quantum_core.testing import eventually
from quantum_core.testing.brokers import new_namespace
from redis_cluster import LocalCluster
from service_helpers import require


@pytest.fixture
async def cluster_client(redis_cluster):
    client = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0], decode_responses=True)
    yield client
    await client.aclose()


async def test_a_redis_cluster_client_works_wherever_a_redis_client_does(
    redis_cluster, cluster_client
):
    prefix = new_namespace()
    got = asyncio.Event()

    async def handle(payload):
        got.set()

    transport = RedisStreamsTransport(cluster_client, prefix=prefix)
    bus = EventBus(transport, service_name="risk")
    bus.subscribe("orders", handle, name="handle")
    async with transport, bus:
        await bus.publish("orders", {"n": 1})
        await asyncio.wait_for(got.wait(), 5)
    async with EventBus(cluster_client, service_name="risk") as own:  # wraps it, as Redis
        await own.publish("orders", {"n": 2})  # under the default prefix
    store = await initialize_policy_store(cluster_client, key_prefix=prefix, snapshot_path=None)
    await store.switch_mode("DEFENSIVE", updated_by="ops")
    await shutdown_policy_store()
    checker = await initialize_health_checker(
        "risk", redis_client=cluster_client, check_binance=False
    )
    report = await checker.get_health_report()
    await shutdown_health_checker()
    assert report.dependencies["redis"].details["cluster_state"] == "ok"
    assert await cluster_client.exists(f"{{{prefix}}}:current")
    assert await cluster_client.xlen(f"{{{prefix}:orders}}:stream") == 1
    assert await cluster_client.xlen("{quantum_core:orders}:stream") >= 1
    await cluster_client.delete("{quantum_core:orders}:stream")
    assert await cluster_client.ping()


async def test_topics_spread_over_the_masters_and_streams_lists_them_all(
    redis_cluster, capsys, log_lines
):
    prefix = new_namespace()
    topics = [f"topic-{n}" for n in range(12)]

    async def fail(payload):
        raise ValueError("venue rejected it")

    bus = EventBus(redis_cluster.url + f"?prefix={prefix}", service_name="exec", max_attempts=1)
    bus.subscribe(topics[0], fail, name="execute")
    async with bus:
        for topic in topics:
            await bus.publish(topic, {"n": 1})

        async def dead():
            return len(await bus.dead_letters(topics[0])) == 1

        await eventually(dead, timeout=5)
    masters = {redis_cluster.master_of(_slot(f"{{{prefix}:{topic}}}:stream")) for topic in topics}
    assert len(masters) == 3  # twelve topics land on every master (1 - 3 * (2/3)**12 odds)

    def run(*args):
        capsys.readouterr()
        options = ["--url", redis_cluster.url, "--prefix", prefix, "--json"]
        while args and args[0].startswith("--"):
            options += args[:2]
            args = args[2:]
        code = main([*options, *args])
        return code, capsys.readouterr()

    code, (out, err) = await asyncio.to_thread(run, "streams")
    assert code == 0, err
    listed = {stream["event_type"]: stream for stream in json.loads(out)}
    assert sorted(listed) == sorted(topics)
    assert listed[topics[0]]["dead_letters"] == 1
    code, (out, err) = await asyncio.to_thread(run, "dlq", "list", topics[0])
    assert code == 0, err
    [letter] = json.loads(out)
    code, (out, err) = await asyncio.to_thread(run, "dlq", "purge", topics[0], "--yes")
    assert code == 0, err
    async with PolicyStore(RedisPolicyBackend(redis_cluster.url, key_prefix=prefix)) as store:
        code, (out, err) = await asyncio.to_thread(
            run, "--policy-prefix", prefix, "policy", "switch", "DEFENSIVE", "--by", "ops"
        )
        assert code == 0, err
        await eventually(lambda: store.policy.active_mode.value == "DEFENSIVE", timeout=3)
        code, (out, err) = await asyncio.to_thread(run, "--policy-prefix", prefix, "policy", "show")
        assert code == 0, err
        assert json.loads(out)["active_mode"] == "DEFENSIVE"
    code, (out, err) = await asyncio.to_thread(run, "health")
    assert code == 0, err
    report = json.loads(out)["dependencies"]["redis"]
    assert report["cluster_state"] == "ok"
    assert report["masters"] == 3
    assert letter


def _slot(key: str) -> int:
    from redis.cluster import key_slot

    return key_slot(key.encode())


async def test_a_slot_nobody_serves_is_unhealthy_and_a_transport_error():
    """Health says so; a publish to it fails with our TransportError, not redis-py's own."""
    prefix = new_namespace()
    topic = "orders"
    slot = str(_slot(f"{{{prefix}:{topic}}}:stream"))
    cluster = LocalCluster(nodes=3, replicas=0)
    try:
        client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        transport = RedisStreamsTransport(cluster.url, prefix=prefix)
        try:
            assert (await RedisCheck(client)()).status is HealthStatus.HEALTHY
            await transport.publish(topic, [b"x"])  # the slots are known from now on
            for port in cluster.ports:  # the slot served by nobody, as after losing its master
                cluster.cli("cluster", "delslots", slot, port=port)
            result = await RedisCheck(client)()
            assert result.status is HealthStatus.UNHEALTHY
            assert "1 of 16384 slots not served" in result.error
            assert result.details["slots_ok"] == 16383
            for _ in range(2):  # CLUSTERDOWN first, then no topology covering the slot
                with pytest.raises(TransportError, match="could not publish to Redis stream"):
                    await transport.publish(topic, [b"y"])
            with pytest.raises(TransportError, match="could not create consumer group"):
                await transport.subscribe(topic, group="g", consumer="c")
        finally:
            await transport.close()
            await client.aclose()
    finally:
        cluster.stop()


async def test_a_cluster_url_naming_a_single_redis_fails_at_start_clearly_and_fast():
    single = require("redis").removeprefix("redis://").split("/")[0]
    bus = EventBus(f"redis+cluster://{single}?prefix={new_namespace()}", service_name="risk")

    async def handle(payload):
        pass

    bus.subscribe("orders", handle)
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"is not a cluster \(cluster_enabled:0\).*redis://"):
        await bus.start()
    assert time.monotonic() - started < 2
    await bus.stop()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://", "names at least one node"),
        ("redis+cluster://h1:7000,h2", "host:port"),
        ("redis+cluster://h1:7000/3", "database 0 only"),
        (
            "redis+cluster://h1:7000?wait_replicas=-1",
            "wait_replicas='-1' is not valid: expected a ",
        ),
        ("redis+cluster://h1:7000?wait_replicas=x", "wait_replicas='x' is not valid"),
    ],
)
def test_bad_cluster_urls_say_what_is_expected(url, expected):
    from quantum_core.bus.registry import transport_from_url

    with pytest.raises(ValueError, match=expected):
        transport_from_url(url)


def test_wait_replicas_is_a_count_of_replicas():
    with pytest.raises(ValueError, match="wait_replicas must be a whole number >= 0"):
        RedisStreamsTransport("redis+cluster://h1:7000", wait_replicas=-1)


def test_the_cluster_check_knows_the_password_to_scrub():
    client = RedisCluster(host="127.0.0.1", port=1, password="s3cret-42")  # noqa: S106 - never connects
    assert RedisCheck(client).secret_values() == ["s3cret-42"]
