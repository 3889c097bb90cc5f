"""A handler that calls sys.exit() or raises KeyboardInterrupt ends its process promptly.

Before, the ack sender task, cancelled by asyncio.run's shutdown before its first step, was
never cleared, and stop() waited for it in a loop that never slept: 100 % CPU, no exit.
"""

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_exiting_consumer.py")
ROOT = Path(__file__).resolve().parents[2]
EXIT_CODES = {"exit": 3, "interrupt": -signal.SIGINT}  # Python dies of SIGINT on ^C


def run_until_exit(*args: str) -> tuple[int, float, str]:
    """Run the script; return its exit code, how long it ran and what it wrote to stderr."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise AssertionError(f"the process did not exit within 20 s: {args}") from None
    return child.returncode, time.monotonic() - started, stderr


@pytest.mark.parametrize("how", ["exit", "interrupt"])
def test_a_handler_ending_the_process_on_the_memory_transport(how):
    code, elapsed, stderr = run_until_exit(how, "memory://")
    assert code == EXIT_CODES[how], stderr
    assert elapsed < 10, f"exited only after {elapsed:.1f} s"


@pytest.mark.parametrize("how", ["exit", "interrupt"])
async def test_a_handler_ending_the_process_on_redis_leaves_its_event_pending(
    how, redis_url, redis_prefix, client
):
    code, elapsed, stderr = await asyncio.to_thread(run_until_exit, how, redis_url, redis_prefix)
    assert code == EXIT_CODES[how], stderr
    assert elapsed < 10, f"exited only after {elapsed:.1f} s"
    stream = f"{redis_prefix}:stream:orders"
    pending = await client.xpending_range(stream, "exiting:handle", min="-", max="+", count=10)
    entries = await client.xrange(stream)
    data = {entry_id: fields[b"event"] for entry_id, fields in entries}
    left = [data[p["message_id"]] for p in pending]
    assert len(left) == 1, left
    assert b'"n":1' in left[0], left
