"""A consumer process for the Kafka crash test: appends each event it handles to a file.

Each handled event is one ``os.write`` of ``"<n>\\n"`` to a file opened with O_APPEND, so a
SIGKILL loses no line the handler wrote. SIGTERM drains it, as in ``_consumer.py``.
"""

import asyncio
import os
import sys

from _serve import serve_until_sigterm

from quantum_core import configure_logging, transport_from_url


async def main(url: str, record: str) -> None:
    configure_logging("crash-consumer", "WARNING")
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def handle(payload: dict) -> None:
        await asyncio.sleep(0.001)
        os.write(fd, f"{payload['n']}\n".encode())

    await serve_until_sigterm(transport_from_url(url), handle)
    os.close(fd)
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
