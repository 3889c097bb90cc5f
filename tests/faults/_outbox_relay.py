"""A relay process for the outbox fault tests.

``_outbox_relay.py DSN TABLE REDIS_URL PREFIX [hang]``

Prints ``active`` once it holds the table's lock. With ``hang``, its transport stops for good
right after its first publish, before the relay marks anything, and prints
``published <count>``: the test SIGKILLs it exactly between publishing and marking.
"""

import asyncio
import sys

from quantum_core import EventBus, Outbox, RedisStreamsTransport


async def main(dsn: str, table: str, url: str, prefix: str, hang: bool) -> None:
    transport = RedisStreamsTransport(url, prefix=prefix)
    if hang:
        publish = transport.publish

        async def publish_then_hang(topic, messages):
            await publish(topic, messages)
            print(f"published {len(messages)}", flush=True)
            await asyncio.Event().wait()

        transport.publish = publish_then_hang  # type: ignore[method-assign]
    bus = EventBus(transport, service_name="relay")
    relay = Outbox(dsn, table).relay(bus, lock_interval=0.1)
    await relay.start()
    if not relay.is_active:
        print("standing by", flush=True)
        return
    print("active", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    dsn, table, url, prefix, *mode = sys.argv[1:]
    asyncio.run(main(dsn, table, url, prefix, hang=mode == ["hang"]))
