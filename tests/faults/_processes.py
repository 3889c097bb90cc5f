"""Consumer subprocesses (``_consumer.py``) for the fault tests, and what they recorded."""

import subprocess
import sys
from pathlib import Path

CONSUMER = Path(__file__).with_name("_consumer.py")
ROOT = Path(__file__).resolve().parents[2]


def start_consumer(url: str, prefix: str, *, idempotent: bool = False) -> subprocess.Popen[str]:
    """Start a consumer process and return once it is consuming (it printed ``ready``)."""
    child = subprocess.Popen(
        [sys.executable, str(CONSUMER), url, prefix, *(["idempotent"] if idempotent else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        child.wait()
        raise AssertionError(f"the consumer process did not start: {line!r}")
    return child


def finish(child: subprocess.Popen[str]) -> None:
    """Kill ``child`` if it still runs, and release its pipe."""
    if child.poll() is None:
        child.kill()
    child.wait(timeout=10)
    if child.stdout is not None:
        child.stdout.close()


async def handled_numbers(client, prefix: str) -> list[int]:
    """The event numbers the consumers handled, in order, with repeats."""
    return [int(n) for n in await client.lrange(f"{prefix}:handled", 0, -1)]
