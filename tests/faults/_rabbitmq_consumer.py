"""A RabbitMQ consumer process for the crash tests: records each event it handles in Redis.

Like ``_consumer.py`` (the Redis one), on the RabbitMQ transport: prints ``ready`` once
consuming; SIGKILL drains nothing.
"""

import asyncio
import sys

import redis.asyncio as redis
from _serve import serve_until_sigterm

from quantum_core import configure_logging
from quantum_core.transports.rabbitmq import RabbitMQTransport


async def main(amqp_url: str, prefix: str, redis_url: str) -> None:
    configure_logging("crash-consumer", "WARNING")
    record = redis.from_url(redis_url)
    transport = RabbitMQTransport(amqp_url, prefix=prefix)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        await record.rpush(f"{prefix}:handled", payload["n"])

    await serve_until_sigterm(transport, handle)
    await record.aclose()
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
