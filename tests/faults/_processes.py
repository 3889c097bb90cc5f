"""Consumer subprocesses for the fault tests, and what they recorded.

Each consumer script (``_consumer.py`` on Redis, ``_nats_consumer.py``,
``_rabbitmq_consumer.py``) prints ``ready`` once its groups exist: the test waits for that
line instead of sleeping, then publishes.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def start_process(script: str, *args: str, ready: str = "ready") -> subprocess.Popen[str]:
    """Start ``tests/faults/<script>`` and return once it is consuming (it printed ``ready``)."""
    child = subprocess.Popen(
        [sys.executable, str(HERE / script), *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    line = child.stdout.readline().strip()
    if line != ready:
        child.kill()
        child.wait()
        raise AssertionError(f"the consumer process {script} did not start: {line!r}")
    return child


def start_consumer(url: str, prefix: str, *, idempotent: bool = False) -> subprocess.Popen[str]:
    """The Redis consumer (``_consumer.py``), once it is consuming."""
    return start_process("_consumer.py", url, prefix, *(["idempotent"] if idempotent else []))


def finish(child: subprocess.Popen[str]) -> None:
    """Kill ``child`` if it still runs, and release its pipe."""
    if child.poll() is None:
        child.kill()
    child.wait(timeout=10)
    if child.stdout is not None:
        child.stdout.close()


async def handled_numbers(client, prefix: str) -> list[int]:
    """The event numbers the consumers recorded in Redis, in order, with repeats."""
    return [int(n) for n in await client.lrange(f"{prefix}:handled", 0, -1)]
