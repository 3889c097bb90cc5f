"""A RabbitMQ consumer process for the crash tests: records each event it handles in Redis.

Like ``_consumer.py`` (the Redis one), on the RabbitMQ transport: prints ``ready`` once
consuming; SIGKILL drains nothing.
"""

import asyncio
import signal
import sys

import redis.asyncio as redis

from quantum_core import EventBus, configure_logging
from quantum_core.bus.rabbitmq import RabbitMQTransport


async def main(amqp_url: str, prefix: str, redis_url: str) -> None:
    configure_logging("crash-consumer", "WARNING")
    record = redis.from_url(redis_url)
    transport = RabbitMQTransport(amqp_url, prefix=prefix)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        await record.rpush(f"{prefix}:handled", payload["n"])

    bus = EventBus(transport, service_name="execution", concurrency=32, read_count=50)
    bus.subscribe("orders", handle, name="handle")
    terminated = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
    await bus.start()
    print("ready", flush=True)
    await terminated.wait()
    await bus.stop()
    await transport.close()
    await record.aclose()
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
