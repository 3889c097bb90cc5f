"""`quantum-core policy` against bad data: a write never starts from the library's defaults."""

import asyncio
import json

import pytest

from quantum_core import PolicyStore, RedisPolicyBackend
from quantum_core.cli import main
from quantum_core.models import RiskMode
from quantum_core.testing import eventually

JUNK = b'{"version": 7, "active_mode": "PANIC"}'


@pytest.fixture(autouse=True)
def _library_logs_to_a_buffer(log_lines):
    """Keep the test's own store's log lines out of the captured stdout and stderr."""
    return log_lines


@pytest.fixture
def cli(capsys, redis_url, redis_prefix):
    async def run(*args):
        argv = ["--url", redis_url, "--prefix", redis_prefix]
        argv += ["--policy-prefix", f"{redis_prefix}:policy"]
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
async def service(redis_url, redis_prefix):
    """A running service's store, with DEFENSIVE limits of its own."""
    backend = RedisPolicyBackend(redis_url, key_prefix=f"{redis_prefix}:policy", poll_interval=0.05)
    async with PolicyStore(backend) as store:
        await store.update_config(
            "DEFENSIVE", updated_by="risk_manager", max_leverage=2.0, max_open_positions=1
        )
        yield store


def defensive_limits(policy):
    config = policy.configs[RiskMode.DEFENSIVE]
    return config.max_leverage, config.max_open_positions


async def test_a_switch_over_a_corrupt_value_never_resets_the_limits(
    cli, service, client, redis_prefix, log_lines
):
    key = f"{redis_prefix}:policy:current"
    await client.set(key, JUNK)
    await eventually(
        lambda: any(e["event"] == "policy_value_unreadable" for e in log_lines()), timeout=5
    )

    code, out, err = await cli("policy", "switch", "DEFENSIVE", "--by", "alice")

    # The CLI holds no valid policy to build on (it started on the junk): it refuses, naming
    # the corruption, rather than write the library's defaults (3 / 2) over the service's.
    assert (code, out) == (1, ""), (code, out, err)
    [line] = err.splitlines()
    assert line.startswith("quantum-core: error: ")
    assert f"Redis key '{key}'" in line
    assert "unreadable" in line
    assert "nothing was written" in line
    assert await client.get(key) == JUNK
    await asyncio.sleep(0.2)  # several periodic checks of the service
    assert defensive_limits(service.policy) == (2.0, 1)
    switched = await service.switch_mode("DEFENSIVE", updated_by="risk_manager")
    assert defensive_limits(switched) == (2.0, 1)
    assert switched.version > 7


async def test_a_reset_writes_the_defaults_on_purpose_above_every_version(
    cli, service, client, redis_prefix
):
    key = f"{redis_prefix}:policy:current"
    await client.set(key, JUNK)

    code, out, err = await cli("policy", "reset", "--by", "alice", "--reason", "new quarter")

    assert code == 0, err
    assert out.startswith("risk policy reset to the defaults: NORMAL and the default limits")
    assert out.endswith("(version 8, by alice)\n")
    await eventually(lambda: service.policy.version == 8, timeout=5)
    assert defensive_limits(service.policy) == (3.0, 2)
    code, out, err = await cli("policy", "reset", "--by", "alice", "--json")
    assert (code, json.loads(out)) == (
        0,
        {"previous_mode": "NORMAL", "active_mode": "NORMAL", "version": 8, "changed": False},
    )
    code, out, _ = await cli("policy", "history", "--json", "--limit", "1")
    [entry] = json.loads(out)
    assert (entry["action"], entry["updated_by"], entry["reason"]) == (
        "reset",
        "alice",
        "new quarter",
    )


async def test_show_says_whether_the_stored_policy_is_a_seed_or_confirmed(
    cli, redis_url, redis_prefix
):
    backend = RedisPolicyBackend(redis_url, key_prefix=f"{redis_prefix}:policy")
    async with PolicyStore(backend) as store:  # a first start: the defaults, as a seed
        code, out, _ = await cli("policy", "show", "--json")
        assert (code, json.loads(out)["seed"]) == (0, True)
        assert "a seed" in (await cli("policy", "show"))[1]
        await store.switch_mode("DEFENSIVE", updated_by="risk_manager")
        code, out, _ = await cli("policy", "show", "--json")
        assert (json.loads(out)["seed"], json.loads(out)["version"]) == (False, 1)
        assert "confirmed" in (await cli("policy", "show"))[1]
