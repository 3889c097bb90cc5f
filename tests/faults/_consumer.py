"""A consumer process for the crash tests: records each event it handles in a Redis list.

SIGTERM drains it: ``bus.stop()`` lets the handlers in flight finish and acknowledges them,
then it prints ``stopped`` and exits 0. SIGKILL, of course, drains nothing. A third
argument, ``idempotent``, subscribes with ``idempotent=True``.
"""

import asyncio
import signal
import sys

import redis.asyncio as redis

from quantum_core import EventBus, RedisStreamsTransport, configure_logging


async def main(url: str, prefix: str, idempotent: bool) -> None:
    configure_logging("crash-consumer", "WARNING")
    record = redis.from_url(url)
    transport = RedisStreamsTransport(url, prefix=prefix, claim_idle=1.0)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        await record.rpush(f"{prefix}:handled", payload["n"])

    bus = EventBus(transport, service_name="execution", concurrency=32, read_count=50)
    bus.subscribe("orders", handle, name="handle", idempotent=idempotent)
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
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["idempotent"]))
