"""A consumer process for the NATS crash test: appends each event it handles to a file.

Each handled event is one ``os.write`` of ``"<n>\\n"`` to a file opened with O_APPEND, so a
SIGKILL loses no line the handler wrote. SIGTERM drains it, as in ``_consumer.py``. A fourth
argument, ``idempotent``, subscribes with ``idempotent=True``.
"""

import asyncio
import os
import sys

from _serve import serve_until_sigterm

from quantum_core import NatsJetStreamTransport, configure_logging


async def main(url: str, prefix: str, record: str, idempotent: bool) -> None:
    configure_logging("crash-consumer", "WARNING")
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    transport = NatsJetStreamTransport(url, prefix=prefix, ack_wait=1.0)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        os.write(fd, f"{payload['n']}\n".encode())

    await serve_until_sigterm(transport, handle, idempotent=idempotent)
    os.close(fd)
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:] == ["idempotent"]))
