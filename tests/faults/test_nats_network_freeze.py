"""NATS JetStream behind a network path that freezes: no RST, no FIN, packets dropped.

The consumer's connection goes through a :class:`FreezableProxy`; the test freezes it and
publishes straight to the server. nats-py pings the server every ``ping_interval`` and
gives the connection up when ``max_outstanding_pings`` pings went unanswered, then
reconnects (the path works for new connections): within ``ping_interval x
(max_outstanding_pings + 1)`` of the freeze. An event JetStream had already pushed into
the dead connection comes back after ``ack_wait``. Meanwhile nothing waits for ever.
"""

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from freezable_proxy import FreezableProxy
from quantum_core import EventBus, NatsJetStreamTransport, TransportError
from quantum_core.testing import eventually

PING_INTERVAL = 0.5
MAX_PINGS = 2
ACK_WAIT = 2.0
PUBLISH_TIMEOUT = 2.0
# Detection, the bus's longest wait between two failed fetches (5 s), a pull request of the
# new connection (poll 1 s + its 2 s grace) or a redelivery after ack_wait, and some room.
RESUMED_WITHIN = PING_INTERVAL * (MAX_PINGS + 1) + 5.0 + 3.0 + ACK_WAIT + 3.0
STOP_WITHIN = 1.0 + 2.0 + 2.0  # stop_timeout, the goodbye round trip (2 s), room


def _proxied(proxy: FreezableProxy, **options: object) -> str:
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"nats://127.0.0.1:{proxy.port}?{query}"


async def test_a_consumer_on_a_frozen_connection_resumes_on_a_new_one(nats_url, nats_prefix):
    handled: list[int] = []

    async def handle(payload: dict) -> None:
        handled.append(payload["n"])

    with FreezableProxy(urlsplit(nats_url).port or 4222) as proxy:
        url = _proxied(
            proxy,
            prefix=nats_prefix,
            ack_wait=ACK_WAIT,
            ping_interval=PING_INTERVAL,
            max_outstanding_pings=MAX_PINGS,
        )
        consumer = EventBus(url, service_name="execution")
        consumer.subscribe("orders", handle, name="handle")
        direct = NatsJetStreamTransport(nats_url, prefix=nats_prefix)
        async with direct, consumer:
            publisher = EventBus(direct, service_name="risk")
            await publisher.publish("orders", {"n": 0})
            await eventually(lambda: handled == [0], "the first event handled", timeout=10)
            connections = proxy.connections
            proxy.freeze()
            await publisher.publish("orders", {"n": 1})
            took = await eventually(
                lambda: 1 in handled, "the event after the freeze", timeout=RESUMED_WITHIN
            )
            assert proxy.connections > connections  # it came through a new connection
            print(f"nats frozen: event handled {took:.1f}s after the freeze")


async def test_stats_publish_and_stop_are_bounded_while_frozen(nats_url, nats_prefix):
    """Pings too slow to notice the freeze during the test: every call returns in time anyway."""
    with FreezableProxy(urlsplit(nats_url).port or 4222) as proxy:
        transport = NatsJetStreamTransport(
            f"nats://127.0.0.1:{proxy.port}",
            prefix=nats_prefix,
            publish_timeout=PUBLISH_TIMEOUT,
            ping_interval=60,
        )
        consumer = EventBus(transport, service_name="execution", stop_timeout=1.0)

        async def handle(payload: dict) -> None:
            pass

        consumer.subscribe("orders", handle, name="handle")
        await consumer.start()
        try:
            await consumer.publish("orders", {"n": 0})
            proxy.freeze()
            async with asyncio.timeout(PUBLISH_TIMEOUT + 2):
                stats = await consumer.stats()
            assert stats["orders -> handle"].lag is None  # unknown, and said so in time
            start = time.monotonic()
            with pytest.raises(TransportError, match="did not confirm"):
                async with asyncio.timeout(PUBLISH_TIMEOUT + 2):
                    await consumer.publish("orders", {"n": 1})
            publish_took = time.monotonic() - start
        finally:
            start = time.monotonic()
            async with asyncio.timeout(STOP_WITHIN):
                await consumer.stop()
                await transport.close()
        stop_took = time.monotonic() - start
        print(f"nats frozen: publish {publish_took:.1f}s, stop {stop_took:.1f}s")
