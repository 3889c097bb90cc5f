"""A store whose network path to Redis freezes silently (no RST, packets dropped).

The store follows Redis through a proxy that freezes every open connection while new
connections still go through, as when a route drops a flow. Another store, directly on
Redis, switches the mode: the frozen store must see it within a few poll intervals, through
new connections, and close() must return promptly instead of waiting on a dead socket.
"""

import asyncio
import time
from urllib.parse import urlparse

import pytest

from freezable_proxy import FreezableProxy
from quantum_core.models import RiskMode
from quantum_core.policy import PolicyStore, RedisPolicyBackend
from quantum_core.testing import eventually

POLL = 0.2
TIMEOUT = 0.5


@pytest.fixture
def proxy(redis_url):
    port = urlparse(redis_url).port or 6379
    with FreezableProxy(port) as proxy:
        yield proxy


@pytest.mark.parametrize("poll_interval", [POLL, 60.0])
async def test_a_frozen_connection_delays_a_switch_by_a_few_intervals_at_most(
    redis_url, redis_prefix, proxy, log_lines, poll_interval
):
    prefix = f"{redis_prefix}:policy"
    frozen_url = f"redis://127.0.0.1:{proxy.port}/0"
    writer = PolicyStore(RedisPolicyBackend(redis_url, key_prefix=prefix, timeout=TIMEOUT))
    follower = PolicyStore(
        RedisPolicyBackend(
            frozen_url, key_prefix=prefix, poll_interval=poll_interval, timeout=TIMEOUT
        )
    )
    async with writer, follower:
        await writer.switch_mode("AGGRESSIVE", updated_by="desk")
        await eventually(
            lambda: follower.policy.active_mode is RiskMode.AGGRESSIVE, "AGGRESSIVE", timeout=5
        )
        await follower.refresh()  # the command connection is in use, and now frozen too

        proxy.freeze()
        await writer.switch_mode("DEFENSIVE", updated_by="risk_manager")
        # With checks every 0.2 s, a few of them; with checks every minute, the listener
        # alone must notice its dead connection and come back within its own deadline.
        limit = 4 * POLL + 3 * TIMEOUT if poll_interval == POLL else 10.0
        waited = await eventually(
            lambda: follower.policy.active_mode is RiskMode.DEFENSIVE, "DEFENSIVE", timeout=limit
        )
        started = time.monotonic()
        refreshed = await follower.refresh()  # the periodic check's GET is bounded too
        assert time.monotonic() - started < TIMEOUT * 4
        assert refreshed.active_mode is RiskMode.DEFENSIVE

        started = time.monotonic()
    closing = time.monotonic() - started
    assert closing < 2.0, f"close() took {closing:.1f} s"
    print(f"seen after {waited:.2f} s, closed in {closing:.2f} s")


async def test_close_returns_at_once_while_every_connection_is_frozen(
    redis_url, redis_prefix, proxy
):
    follower = PolicyStore(
        RedisPolicyBackend(
            f"redis://127.0.0.1:{proxy.port}/0",
            key_prefix=f"{redis_prefix}:policy",
            poll_interval=POLL,
            timeout=TIMEOUT,
        )
    )
    await follower.initialize()
    await follower.refresh()  # both connections open: the listener's and the commands'
    proxy.freeze()
    # A periodic check's GET goes into the frozen path, and waits there for an answer.
    await eventually(lambda: proxy.dropped, "a command sent into the frozen path", timeout=5)
    started = time.monotonic()
    await follower.close()
    closing = time.monotonic() - started
    assert closing < TIMEOUT, f"close() took {closing:.2f} s"


async def test_initialize_returns_within_its_bounds_from_a_server_that_never_answers():
    """Loading and the first SUBSCRIBE are each bounded by ``timeout``; the store starts anyway."""

    async def black_hole(reader, writer):
        await reader.read()  # reads what the client says until it gives up; answers nothing
        writer.close()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = PolicyStore(
        RedisPolicyBackend(f"redis://127.0.0.1:{port}/0", poll_interval=60.0, timeout=TIMEOUT)
    )
    started = time.monotonic()
    policy = await store.initialize()
    took = time.monotonic() - started
    await store.close()
    server.close()
    await server.wait_closed()
    assert (store.source, policy.version) == ("defaults", 0)
    assert took < 3 * TIMEOUT + 1.0, f"initialize() took {took:.2f} s"
