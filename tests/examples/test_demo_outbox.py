"""The demo with ``--postgres``: each fill a row, its event reaching the flow via the outbox."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from outbox_helpers import postgres_dsn

ROOT = Path(__file__).resolve().parents[2]


async def test_the_demo_records_fills_and_relays_their_events_keeping_the_trace():
    dsn = await postgres_dsn()
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "examples.trading.run", "--interval", "0", "--postgres", dsn],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout[result.stdout.index("quantum_core trading demo: summary") :]
    filled = int(re.search(r"orders filled\s+(\d+)", summary).group(1))
    recorded = int(re.search(r"fills recorded\s+(\d+) in PostgreSQL", summary).group(1))
    chains = re.search(r"trace chains\s+(\d+)/(\d+)", summary).groups()
    assert filled == recorded > 0  # each event delivered once, each fill a row
    assert chains == (str(filled), str(filled))  # the trace id went through the outbox
    assert '"event":"outbox_relay_active"' in result.stdout
