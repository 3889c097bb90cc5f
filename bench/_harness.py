"""What every benchmark shares: its own redis-server, repeated runs, medians, rows and targets.

A benchmark module exposes ``TITLE``, optionally ``RUNS`` (fixed number of runs, e.g. 1 for
a long soak), ``async def measure(ctx) -> dict[str, float]`` (one run: each metric once)
and ``def rows(stats, ctx) -> list[Row]`` (which figure stands beside which baseline, and
the target). The runner calls ``measure`` ``ctx.runs`` times, so ours and its baseline are
always measured in the same run, taking turns, on the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Every client of every benchmark speaks the same protocol; the runner checks what each uses.
RESP = 3
NO_PERSISTENCE = ("--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of our own on a free port, without persistence: never the shared 6379."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not on PATH: install Redis (apt install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0?protocol={RESP}"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        else:
            self.stop()
            sys.exit(f"redis-server did not answer on port {self.port}")
        self.version = str(client.info("server")["redis_version"])
        client.close()

    def flush(self) -> None:
        """Empty the server between benchmarks, so one's leftovers never weigh on the next."""
        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Context:
    """What a benchmark needs to know about this run."""

    url: str
    quick: bool
    runs: int
    server: RedisServer | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qc-bench-")))
    info: dict[str, Any] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Stat:
    median: float
    min: float
    max: float
    samples: list[float]

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        finite = [v for v in values if not math.isnan(v)] or [math.nan]
        return cls(statistics.median(finite), min(finite), max(finite), list(values))


@dataclass
class Target:
    """A claim to check: ``of`` is ``"value"`` (ours) or ``"ratio"`` (ours / baseline)."""

    op: str
    value: float
    of: str = "value"

    def check(self, value: float, ratio: float | None) -> bool | None:
        x = ratio if self.of == "ratio" else value
        if x is None or math.isnan(x):
            return None
        return {">=": x >= self.value, "<=": x <= self.value, "<": x < self.value}[self.op]

    def text(self, unit: str, baseline: str) -> str:
        if self.of == "ratio":
            return f"{self.op} {self.value:g}x {baseline}"
        return f"{self.op} {fmt(self.value, unit)} {unit}"


@dataclass
class Row:
    section: str
    name: str
    unit: str
    ours: Stat
    baseline_name: str = ""
    baseline: Stat | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.median:
            return None
        return self.ours.median / self.baseline.median

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.check(self.ours.median, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        out["target_text"] = (
            "" if self.target is None else self.target.text(self.unit, self.baseline_name)
        )
        return out


def fmt(value: float, unit: str = "") -> str:
    """A figure as a reader wants it: thousands separated, a few significant digits."""
    if value is None or math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.1 else f"{value:.3f}"


_started: dict[str, Any] = {}


def started_once(name: str, start: Callable[[], Any]) -> Any:
    """One server ``name`` per runner process, made by ``start`` at first use, stopped at exit.

    The broker benches (NATS, Kafka) run each of their runs against the same server.
    """
    if name not in _started:
        import atexit

        server = _started[name] = start()
        atexit.register(server.stop)
    return _started[name]


def rss_mb() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def machine_info(server_version: str) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
        return None

    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": server_version,
        "redis_py": version("redis"),
        "hiredis": version("hiredis"),
        "faststream": version("faststream"),
        "structlog": version("structlog"),
        "quantum_core": version("quantum-core"),
        "git_commit": _git_commit(),
        "load_average": os.getloadavg(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=REPO
        )
        return out.stdout.strip() + ("+dirty-src" if dirty.stdout.strip() else "")
    return None


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    """``with timer() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


async def collect(module: Any, ctx: Context) -> dict[str, Stat]:
    """Run ``module.measure`` its number of times; every metric's samples, summarised."""
    samples: dict[str, list[float]] = {}
    runs = getattr(module, "RUNS", None) or ctx.runs
    for index in range(runs):
        print(f"  {module.TITLE}: run {index + 1}/{runs}", file=sys.stderr, flush=True)
        for name, value in (await module.measure(ctx)).items():
            samples.setdefault(name, []).append(float(value))
        if ctx.server is not None:
            ctx.server.flush()
        await asyncio.sleep(0)
    return {name: Stat.of(values) for name, values in samples.items()}
