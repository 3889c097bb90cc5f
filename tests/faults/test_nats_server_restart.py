"""Kill (SIGKILL) and restart a nats-server under a running publisher and consumer.

The server keeps JetStream on disk (``-sd``), so its streams and consumers come back with
it; the bus's connection reconnects and the consumer goes on. A server killed mid-write may
lose the last messages it acknowledged (JetStream writes to disk asynchronously) and the
last acknowledgements it took (those events come again): the server's loss, not the bus's.
Everything published after the restart is handled.
"""

import asyncio
import time
from collections import Counter

from nats_fixtures import NatsServer
from quantum_core import EventBus, NatsJetStreamTransport
from quantum_core.errors import TransportError
from quantum_core.testing import eventually
from quantum_core.transports.nats.connection import connect

AFTER_RESTART = 500  # events published once the server is back, before the publisher stops


async def test_a_killed_and_restarted_nats_server_under_a_running_consumer(log_lines):
    server = NatsServer()
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
            NatsJetStreamTransport(server.url, prefix="restart", ack_wait=2) as consumer_side,
            NatsJetStreamTransport(
                server.url, prefix="restart", publish_timeout=1
            ) as publisher_side,
        ):
            bus = EventBus(consumer_side, service_name="exec")
            bus.subscribe("orders", handle, name="orders")
            publisher = EventBus(publisher_side, service_name="risk")
            async with bus:
                publishing = asyncio.create_task(publish_forever(publisher))
                await asyncio.sleep(1.0)
                phase["killed_at"] = time.monotonic()
                server.stop()  # SIGKILL
                await asyncio.sleep(1.5)
                server.start()
                await server.wait_ready()
                phase["restarted_at"] = time.monotonic()
                await asyncio.wait_for(publishing, timeout=60)
                deadline = time.monotonic() + 30
                while not all(handled[n] for n in stored_after_restart):
                    assert time.monotonic() < deadline, "events published after the restart"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # anything handled twice would show up now
                pending = (await bus.backlog())["orders -> orders"].pending
        lost_by_bus = [n for n in stored_after_restart if not handled[n]]
        lost_with_server = [n for n in stored_before_kill + in_doubt if not handled[n]]
        duplicates = sum(count - 1 for count in handled.values() if count > 1)
        events = len(stored_before_kill) + len(in_doubt) + len(stored_after_restart)
        recovery = first_after_restart[0] - phase["restarted_at"]
        print(
            f"\nnats-server kill+restart: events={events} lost={len(lost_by_bus)} "
            f"lost_with_server={len(lost_with_server)} duplicates={duplicates} "
            f"recovery={recovery:.1f}s (publishes refused during the outage: "
            f"{failed_publishes}, in doubt: {len(in_doubt)})"
        )
        assert lost_by_bus == []
        assert len(stored_before_kill) > 100  # the publisher was really running
        # What the server lost can only be what was published shortly before it died.
        assert set(lost_with_server) <= set(stored_before_kill[-200:] + in_doubt)
        # Redelivered: only what was handled shortly before the kill (acks the server lost).
        assert duplicates <= 200
        assert pending == 0
        events_logged = [line["event"] for line in log_lines()]
        assert events_logged.count("nats_disconnected") == 2  # one per connection
        assert events_logged.count("nats_reconnected") == 2
    finally:
        server.cleanup()


async def test_clients_that_lost_the_server_do_not_try_again_together():
    """nats-py waits a fixed time between tries; ours is the library's jittered backoff."""
    server = NatsServer()
    server.start()
    clients = []
    try:
        for _ in range(2):
            clients.append(await connect([server.url], closing=lambda: False))
        first = {client.options["reconnect_time_wait"] for client in clients}
        server.stop()  # both lose it at the same instant

        def waits():
            return {client.options["reconnect_time_wait"] for client in clients}

        await eventually(lambda: len(waits()) == 2 and not waits() & first, timeout=10.0)
        assert all(0 < wait <= 1.0 for wait in waits())
    finally:
        for client in clients:
            await client.close()
        server.cleanup()
