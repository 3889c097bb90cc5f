"""RabbitMQ behind a network path that freezes: no RST, no FIN, packets dropped.

The consumer's connections go through a :class:`FreezableProxy`; the test freezes them and
publishes straight to the broker. AMQP heartbeats find the silent connection: aiormq gives
it up when nothing came for ``(heartbeat + 1) x 3`` seconds (it looks every ``heartbeat /
2``), the broker when two heartbeats went missing, and requeues what it held. aio-pika's
robust connection reconnects (the path works for new connections) and the subscription
consumes again. Meanwhile nothing waits for ever.
"""

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from freezable_proxy import FreezableProxy
from quantum_core import EventBus, TransportError
from quantum_core.testing import eventually
from quantum_core.transports.rabbitmq import RabbitMQTransport

HEARTBEAT = 1
# aiormq's detection ((heartbeat + 1) x 3, checked every second), a reconnect (1 s), the bus's
# longest wait between two failed fetches (5 s), and room for a loaded machine.
RESUMED_WITHIN = (HEARTBEAT + 1) * 3 + 1 + 1 + 5 + 5
REPLY_WAIT = 2  # publish_timeout: how long any answer of the broker is waited for
STOP_WITHIN = 1 + REPLY_WAIT + 2 + 2  # stop_timeout, the goodbye, aiormq closing (2 s), room


def _through(amqp_url: str, proxy: FreezableProxy, query: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return parts._replace(netloc=netloc, query=query).geturl()


async def test_a_consumer_on_a_frozen_connection_resumes_on_a_new_one(
    amqp_url, rabbitmq_prefix, rabbitmq_transports, rabbitmq_declared
):
    handled: list[int] = []

    async def handle(payload: dict) -> None:
        handled.append(payload["n"])

    with FreezableProxy(urlsplit(amqp_url).port or 5672) as proxy:
        url = _through(amqp_url, proxy, f"prefix={rabbitmq_prefix}&heartbeat={HEARTBEAT}")
        transport = RabbitMQTransport(url)
        transport._state.declared = rabbitmq_declared  # the fixture deletes its queues
        consumer = EventBus(transport, service_name="execution", stop_timeout=1.0)
        consumer.subscribe("orders", handle, name="handle")
        publisher = EventBus(rabbitmq_transports(), service_name="risk")
        try:
            await consumer.start()
            await publisher.publish("orders", {"n": 0})
            await eventually(lambda: handled == [0], "the first event handled", timeout=10)
            connections = proxy.connections
            proxy.freeze()
            await publisher.publish("orders", {"n": 1})
            took = await eventually(
                lambda: 1 in handled, "the event after the freeze", timeout=RESUMED_WITHIN
            )
            assert proxy.connections > connections  # it came through a new connection
            print(f"rabbitmq frozen: event handled {took:.1f}s after the freeze")
        finally:
            async with asyncio.timeout(STOP_WITHIN + 5):
                await consumer.stop()
                await transport.close()


async def test_stats_publish_and_stop_are_bounded_while_frozen(
    amqp_url, rabbitmq_prefix, rabbitmq_declared
):
    """A heartbeat too slow to notice the freeze during the test: every call returns anyway."""
    with FreezableProxy(urlsplit(amqp_url).port or 5672) as proxy:
        query = f"prefix={rabbitmq_prefix}&heartbeat=600&publish_timeout={REPLY_WAIT}"
        url = _through(amqp_url, proxy, query)
        transport = RabbitMQTransport(url)
        transport._state.declared = rabbitmq_declared
        consumer = EventBus(transport, service_name="execution", stop_timeout=1.0)

        async def handle(payload: dict) -> None:
            pass

        consumer.subscribe("orders", handle, name="handle")
        await consumer.start()
        try:
            await consumer.publish("orders", {"n": 0})  # the publishing connection is open
            await consumer.stats()  # and so is the channel stats use
            proxy.freeze()
            for _ in range(2):
                async with asyncio.timeout(REPLY_WAIT + 2):
                    stats = await consumer.stats()
                assert stats["orders -> handle"].lag is None  # unknown, and said so in time
            start = time.monotonic()
            with pytest.raises(TransportError, match="did not confirm"):
                async with asyncio.timeout(REPLY_WAIT + 2):
                    await consumer.publish("orders", {"n": 1})
            publish_took = time.monotonic() - start
        finally:
            start = time.monotonic()
            async with asyncio.timeout(STOP_WITHIN):
                await consumer.stop()
                await transport.close()
        stop_took = time.monotonic() - start
        print(f"rabbitmq frozen: publish {publish_took:.1f}s, stop {stop_took:.1f}s")


async def test_listing_topics_is_bounded_while_frozen(amqp_url, rabbitmq_prefix, rabbitmq_declared):
    with FreezableProxy(urlsplit(amqp_url).port or 5672) as proxy:
        query = f"prefix={rabbitmq_prefix}&heartbeat=600&publish_timeout={REPLY_WAIT}"
        transport = RabbitMQTransport(_through(amqp_url, proxy, query))
        transport._state.declared = rabbitmq_declared
        try:
            await transport.publish("orders", [b"1"])
            assert [t.event_type for t in await transport.list_topics()] == ["orders"]
            proxy.freeze()
            with pytest.raises(TransportError, match=rf"no answer within {REPLY_WAIT} s"):
                async with asyncio.timeout(REPLY_WAIT + 2):
                    await transport.list_topics()
        finally:
            async with asyncio.timeout(STOP_WITHIN):
                await transport.close()
