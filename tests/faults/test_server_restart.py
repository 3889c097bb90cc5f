"""Kill and restart the Redis server (no persistence) under a running publisher and consumer.

What a server without persistence loses is the server's loss, not the bus's: every publish
that returned before the kill was either handled or is reported lost with the server, and
everything published after the restart is handled.
"""

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from quantum_core import EventBus, RedisStreamsTransport
from quantum_core.errors import TransportError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from _services import RedisServer  # the integration tests' own helper

AFTER_RESTART = 500  # events published once the server is back, before the publisher stops


async def test_a_killed_and_restarted_server_loses_nothing_the_bus_was_given(log_lines):
    server = RedisServer()
    server.start()
    handled: Counter[int] = Counter()
    first_after_restart: list[float] = []
    stored_before_kill: list[int] = []  # publish returned before the kill
    stored_after_restart: list[int] = []  # publish started once the server was back
    in_doubt: list[int] = []  # publish started before the server came back, returned after
    failed_publishes = 0
    phase = {"killed_at": None, "restarted_at": None}

    async def handle(payload):
        handled[payload["n"]] += 1
        if payload.get("after") and not first_after_restart:
            first_after_restart.append(time.monotonic())

    async def publish_forever(publisher):
        nonlocal failed_publishes
        n = 0
        while len(stored_after_restart) < AFTER_RESTART:
            after = phase["restarted_at"] is not None
            try:
                await publisher.publish("orders", {"n": n, "after": after})
            except TransportError:
                failed_publishes += 1
                await asyncio.sleep(0.05)
            else:
                if after:
                    stored_after_restart.append(n)
                elif phase["killed_at"] is None:
                    stored_before_kill.append(n)
                else:
                    in_doubt.append(n)
            n += 1
            await asyncio.sleep(0.002)

    try:
        async with (
            RedisStreamsTransport(server.url, prefix="restart") as consumer_transport,
            RedisStreamsTransport(server.url, prefix="restart") as publisher_transport,
        ):
            bus = EventBus(consumer_transport, service_name="exec")
            bus.subscribe("orders", handle, name="orders")
            publisher = EventBus(publisher_transport, service_name="risk")
            async with bus:
                publishing = asyncio.create_task(publish_forever(publisher))
                await asyncio.sleep(1.0)
                phase["killed_at"] = time.monotonic()
                server.stop()  # SIGKILL: the server forgets everything
                await asyncio.sleep(1.5)
                server.start()
                phase["restarted_at"] = time.monotonic()
                await asyncio.wait_for(publishing, timeout=60)
                deadline = time.monotonic() + 30
                while not all(handled[n] for n in stored_after_restart):
                    assert time.monotonic() < deadline, "events published after the restart"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # anything handled twice would show up now
        lost_by_bus = [n for n in stored_after_restart if not handled[n]]
        lost_with_server = [n for n in stored_before_kill + in_doubt if not handled[n]]
        duplicates = sum(count - 1 for count in handled.values() if count > 1)
        events = len(stored_before_kill) + len(in_doubt) + len(stored_after_restart)
        recovery = first_after_restart[0] - phase["restarted_at"]
        print(
            f"\nredis kill+restart: events={events} lost={len(lost_by_bus)} "
            f"lost_with_server={len(lost_with_server)} duplicates={duplicates} "
            f"recovery={recovery:.1f}s (publishes refused during the outage: "
            f"{failed_publishes}, in doubt: {len(in_doubt)})"
        )
        assert lost_by_bus == []
        assert len(stored_before_kill) > 100  # the publisher was really running
        # What the server lost can only be what was published shortly before it died.
        assert set(lost_with_server) <= set(stored_before_kill[-200:] + in_doubt)
        assert duplicates == 0
        events_logged = [line["event"] for line in log_lines()]
        assert events_logged.count("event_fetch_failed") == 1
        assert events_logged.count("transport_recovered") == 1
    finally:
        server.stop()
