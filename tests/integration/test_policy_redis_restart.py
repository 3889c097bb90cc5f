"""A Redis restart without persistence must not undo a confirmed switch, whoever checks first.

Store A switched to DEFENSIVE (confirmed by Redis); Redis dies; store B starts during the
outage on the defaults; Redis comes back empty. Whichever store checks first, both stores
and Redis must end on A's DEFENSIVE: a policy from the defaults or a snapshot never wins
over one that Redis confirmed. A gate on each store's reads fixes the order of the checks.
"""

import asyncio
import json

import pytest
import redis.asyncio as redis
from _services import RedisServer

from quantum_core.models import RiskMode
from quantum_core.policy import PolicyStore, RedisPolicyBackend
from quantum_core.testing import eventually

PREFIX = "restart"


class GatedBackend(RedisPolicyBackend):
    """The real Redis backend, whose reads wait while the test holds the gate closed."""

    def __init__(self, url: str) -> None:
        # No periodic check within the test: only the listener's reload and the test's own
        # refresh() run checks, and the gate decides when they get through.
        super().__init__(url, key_prefix=PREFIX, poll_interval=60.0, timeout=1.0)
        self.gate = asyncio.Event()
        self.gate.set()

    async def load(self):
        await self.gate.wait()
        policy = await super().load()
        await self.gate.wait()  # a read already under way when the gate closed waits too
        return policy

    async def load_stored(self):
        await self.gate.wait()
        stored = await super().load_stored()
        await self.gate.wait()
        return stored


@pytest.fixture
def server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def stores(server):
    """Make stores on the test's server; every one is closed at teardown, failed test or not."""
    made = []

    async def make():
        store = PolicyStore(GatedBackend(server.url))
        made.append(store)
        await store.initialize()
        return store

    yield make
    for store in made:
        store.backend.gate.set()
        await store.close()


async def stored_document(server):
    client = redis.Redis.from_url(server.url)
    try:
        raw = await client.get(f"{PREFIX}:current")
    finally:
        await client.aclose()
    return None if raw is None else json.loads(raw)


@pytest.mark.parametrize("first", ["seed of B", "restore by A"])
async def test_a_confirmed_switch_survives_a_restart_whichever_store_checks_first(
    server, stores, log_lines, first
):
    a = await stores()
    await a.switch_mode("DEFENSIVE", updated_by="risk_manager", reason="drawdown")

    server.stop()
    b = await stores()  # during the outage: on the defaults
    assert (b.source, b.policy.active_mode) == ("defaults", RiskMode.NORMAL)

    first_store, second_store = (b, a) if first == "seed of B" else (a, b)
    second_store.backend.gate.clear()
    server.start()  # empty: no persistence
    await first_store.refresh()
    document = await stored_document(server)
    if first == "seed of B":
        assert (document["active_mode"], document["version"]) == ("NORMAL", 0)
    else:
        assert (document["active_mode"], document["version"]) == ("DEFENSIVE", 1)
    second_store.backend.gate.set()
    await second_store.refresh()

    async def settled():
        document = await stored_document(server)
        return (
            document is not None
            and document["active_mode"] == "DEFENSIVE"
            and document["version"] >= 1
            and all(s.policy.active_mode is RiskMode.DEFENSIVE for s in (a, b))
        )

    async def state():
        document = await stored_document(server)
        document = document and f"{document['active_mode']} v{document['version']}"
        held = ", ".join(
            f"{name} {s.policy.active_mode.value} v{s.policy.version}"
            for name, s in (("A", a), ("B", b))
        )
        return f"Redis holds {document}; {held}"

    try:
        await eventually(settled, "Redis and both stores on DEFENSIVE")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {await state()}") from None
    for store in (a, b):
        assert store.policy.version >= 1
        assert store.policy.updated_by == "risk_manager"
    went_normal = [
        line
        for line in log_lines()
        if line["event"] == "policy_changed" and line["active_mode"] == "NORMAL"
    ]
    assert not went_normal
