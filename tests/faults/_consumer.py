"""A consumer process for the crash tests: records each event it handles in a Redis list."""

import asyncio
import sys

import redis.asyncio as redis

from quantum_core import EventBus, RedisStreamsTransport, configure_logging


async def main(url: str, prefix: str) -> None:
    configure_logging("crash-consumer", "WARNING")
    record = redis.from_url(url)
    transport = RedisStreamsTransport(url, prefix=prefix, claim_idle=1.0)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        await record.rpush(f"{prefix}:handled", payload["n"])

    bus = EventBus(transport, service_name="execution", concurrency=32, read_count=50)
    bus.subscribe("orders", handle, name="handle")
    await bus.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
