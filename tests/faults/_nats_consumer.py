"""A consumer process for the NATS crash test: appends each event it handles to a file.

Each handled event is one ``os.write`` of ``"<n>\\n"`` to a file opened with O_APPEND, so a
SIGKILL loses no line the handler wrote. SIGTERM drains it, as in ``_consumer.py``. A fourth
argument, ``idempotent``, subscribes with ``idempotent=True``.
"""

import asyncio
import os
import signal
import sys

from quantum_core import EventBus, NatsJetStreamTransport, configure_logging


async def main(url: str, prefix: str, record: str, idempotent: bool) -> None:
    configure_logging("crash-consumer", "WARNING")
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    transport = NatsJetStreamTransport(url, prefix=prefix, ack_wait=1.0)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        os.write(fd, f"{payload['n']}\n".encode())

    bus = EventBus(transport, service_name="execution", concurrency=32, read_count=50)
    bus.subscribe("orders", handle, name="handle", idempotent=idempotent)
    terminated = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
    await bus.start()
    print("ready", flush=True)
    await terminated.wait()
    await bus.stop()
    await transport.close()
    os.close(fd)
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:] == ["idempotent"]))
