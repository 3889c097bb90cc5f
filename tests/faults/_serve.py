"""What every fault-test consumer script does: subscribe, say ready, drain on SIGTERM."""

import asyncio
import signal
from collections.abc import Awaitable, Callable

from quantum_core import EventBus, Transport


async def serve_until_sigterm(
    transport: Transport, handle: Callable[[dict], Awaitable[None]], *, idempotent: bool = False
) -> None:
    """Consume "orders" as the 'execution' service until SIGTERM, then stop and close."""
    bus = EventBus(transport, service_name="execution", concurrency=32, read_count=50)
    bus.subscribe("orders", handle, name="handle", idempotent=idempotent)
    terminated = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
    await bus.start()
    print("ready", flush=True)
    await terminated.wait()
    await bus.stop()
    await transport.close()
