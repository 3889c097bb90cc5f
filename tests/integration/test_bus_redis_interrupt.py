"""Ctrl-C on a busy publisher stops it, every time.

On Python 3.11, ``asyncio.wait_for`` (which redis-py uses to send a command with a
socket timeout) drops a cancellation that arrives as the send completes; a publisher in a
loop then goes on for ever after Ctrl-C. The bus gives such a cancellation back.
"""

import asyncio
import signal
import subprocess
import sys
import time

import redis.asyncio as redis

TRIES = 20
AT_ONCE = 4  # processes interrupted side by side: 20 tries in a few seconds
PROMPTLY = 5.0  # seconds from SIGINT to exit

PUBLISHER = """
import asyncio, signal, sys
from quantum_core import EventBus

# Ctrl-C as at a terminal, even when this test run was started with SIGINT ignored (a
# background job of a script): the child would inherit the ignoring and never stop.
signal.signal(signal.SIGINT, signal.default_int_handler)

async def main(url, prefix):
    bus = EventBus(f"{url}?prefix={prefix}", service_name="ticker")
    n = 0
    while True:
        await bus.publish("ticks", {"n": n})
        n += 1

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _interrupt_while_publishing(url, prefix, client):
    child = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, url, prefix],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while await client.xlen(f"{prefix}:stream:ticks") < 200:  # publishing flat out
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the publisher never got going"
            await asyncio.sleep(0.02)
        child.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        try:
            await asyncio.to_thread(child.wait, PROMPTLY)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stderr.close()


async def test_ctrl_c_stops_a_busy_publisher_every_time(redis_url, redis_prefix):
    client = redis.from_url(redis_url)
    took = []
    try:
        for start in range(0, TRIES, AT_ONCE):
            took += await asyncio.gather(
                *(
                    _interrupt_while_publishing(redis_url, f"{redis_prefix}:{n}", client)
                    for n in range(start, start + AT_ONCE)
                )
            )
    finally:
        await client.aclose()
    stuck = sum(1 for t in took if t is None)
    assert stuck == 0, f"{stuck} of {TRIES} publishers went on after Ctrl-C (times: {took})"
