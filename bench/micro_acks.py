"""Nanoseconds per acknowledgement handed to the bus's ack batcher (``python bench/micro_acks.py``).

The ack path is hot: every handled event goes through ``AckBatcher.add``, and its batches
through ``Subscription.ack``. This times ``add`` alone (a burst of adds, as handlers finishing
in one loop iteration do) and ``add`` with the batches sent (a no-op subscription), as the
median of several runs. Run it in two checkouts to compare them; no server is needed.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from quantum_core.bus._acks import AckBatcher

BURST = 100  # acks handed over per loop iteration
BURSTS = 2_000
RUNS = 7


class _NoOp:
    async def ack(self, deliveries: object) -> None:
        return None


async def _once() -> tuple[float, float]:
    batcher = AckBatcher(_NoOp(), "bench")  # type: ignore[arg-type]
    add = batcher.add
    adding = 0.0
    started = time.perf_counter_ns()
    for _ in range(BURSTS):
        begin = time.perf_counter_ns()
        for item in range(BURST):
            add(item)  # type: ignore[arg-type]
        adding += time.perf_counter_ns() - begin
        await asyncio.sleep(0)  # the sender sends what was handed over
    await batcher.flush(5.0)
    total = time.perf_counter_ns() - started
    count = BURST * BURSTS
    return adding / count, total / count


def main() -> None:
    results = [asyncio.run(_once()) for _ in range(RUNS)]
    add = statistics.median(r[0] for r in results)
    whole = statistics.median(r[1] for r in results)
    print(f"add: {add:.0f} ns per ack; add and send: {whole:.0f} ns per ack (median of {RUNS})")


if __name__ == "__main__":
    main()
