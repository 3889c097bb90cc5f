"""A process whose handler ends it: ``sys.exit(3)`` or ``KeyboardInterrupt``, mid-stream.

    python _exiting_consumer.py <exit|interrupt> <url> [<redis prefix>]

The first event is handled and acknowledged (so an ack is on its way), the second ends the
process from inside its handler. The process must exit promptly, as an uncaught exception
in plain Python would, and leave the second event pending on the broker.
"""

import asyncio
import sys

from quantum_core import EventBus, RedisStreamsTransport


async def main(how: str, url: str, prefix: str | None) -> None:
    transport = url if prefix is None else RedisStreamsTransport(url, prefix=prefix)
    bus = EventBus(transport, service_name="exiting", stop_timeout=30)

    async def handle(payload: dict) -> None:
        if payload["n"] == 1:
            if how == "exit":
                sys.exit(3)
            raise KeyboardInterrupt

    bus.subscribe("orders", handle, name="handle")
    async with bus:
        await bus.publish_many("orders", [{"n": 0}, {"n": 1}])
        await asyncio.Event().wait()  # until the handler ends the process


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
