"""quantum-core run (issue 22): ready line, drain on SIGTERM, one clear line on failure, workers.

Each test writes a small service module into its own directory and runs the real command in
a child process on the memory transport (no server): what an operator's process manager sees.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from quantum_core.cli import main
from service_helpers import free_port

DRAIN = """
import asyncio
from quantum_core import App, EventBus

bus = EventBus("memory://", service_name="drainer", stop_timeout=5)
app = App(bus)


@bus.subscriber("work.item", from_beginning=True)
async def work(payload: dict) -> None:
    print("handler_started", flush=True)
    await asyncio.sleep(0.5)
    print("handler_finished", flush=True)


@app.on_startup
async def first_item() -> None:
    await bus.publish("work.item", {"n": 1})
"""

IDLE = """
from quantum_core import EventBus

bus = EventBus("memory://", service_name="idle", stop_timeout=2)


@bus.subscriber("work.item")
async def work(payload: dict) -> None: ...
"""


class Child:
    """``quantum-core run ...`` in a child process, its stdout read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, directory: Path, *args: str) -> Child:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "quantum_core.cli", "run", *args),
            cwd=directory,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def until(self, wanted: str, timeout: float = 20.0) -> str:
        """Read lines until one contains ``wanted``; return it."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"stdout ended before {wanted!r}: {self.lines}"
                self.lines.append(line)
                if wanted in line:
                    return line

    async def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        """Wait for the exit; return the code and stderr (stdout's rest lands in lines)."""
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        self.lines += out.decode().splitlines(keepends=True)
        return self.process.returncode or 0, err.decode()

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


async def test_sigterm_drains_the_handler_in_flight_then_exits_0(tmp_path: Path) -> None:
    (tmp_path / "drain_service.py").write_text(DRAIN)
    child = await Child.start(tmp_path, "drain_service:app")
    await child.until('"app_ready"')
    await child.until("handler_started")
    child.process.send_signal(signal.SIGTERM)
    code, stderr = await child.finish()
    assert (code, stderr) == (0, "")
    text = "".join(child.lines)
    assert text.index("handler_finished") < text.index('"event_bus_stopped"')
    ready = [e for e in child.events() if e["event"] == "app_ready"]
    assert len(ready) == 1
    assert ready[0]["service"] == "drainer"
    assert ready[0]["subscriptions"] == ["work.item -> drain_service.work"]


async def test_sigint_stops_a_plain_event_bus_too(tmp_path: Path) -> None:
    (tmp_path / "idle_service.py").write_text(IDLE)
    child = await Child.start(tmp_path, "idle_service:bus")
    await child.until('"app_ready"')
    child.process.send_signal(signal.SIGINT)
    assert await child.finish() == (0, "")


def test_an_import_that_fails_is_one_clear_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (``main`` returns the code): the same checks as the child runs, faster."""
    (tmp_path / "broken_service.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "factory_service.py").write_text(
        "def factory():\n    raise RuntimeError('no settings')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # run puts the directory on it
    for target, expected in [
        ("broken_service:app", "cannot import 'broken_service': ModuleNotFoundError: No module"),
        ("missing_service:app", "cannot import 'missing_service'"),
        ("json:nothing_here", "'json' has no attribute 'nothing_here'"),
        ("json:__name__", "json:__name__ is a str; expected an App, an EventBus"),
        ("factory_service:factory", "factory_service:factory() failed: RuntimeError: no settings"),
    ]:
        for command in ("run", "asyncapi"):
            assert main([command, target]) == 1, target
            out, err = capsys.readouterr()
            assert out == ""
            assert err.splitlines() == [err.strip()], err  # one line
            assert err.startswith(f"quantum-core: error: {expected}"), err
    assert main(["run", "no-colon"]) == 2
    assert "expected pkg.module:obj" in capsys.readouterr().err


async def test_an_unreachable_broker_at_start_is_one_clear_line_and_exit_1(
    tmp_path: Path,
) -> None:
    port = free_port()
    (tmp_path / "far_service.py").write_text(
        "from quantum_core import EventBus\n"
        f"bus = EventBus('redis://:hunter2@127.0.0.1:{port}/0', service_name='far')\n"
    )
    child = await Child.start(tmp_path, "far_service:bus")
    code, stderr = await child.finish()
    assert code == 1
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("quantum-core: error: cannot start 'far'"), stderr
    assert "hunter2" not in stderr + "".join(child.lines)
    assert not [e for e in child.events() if e["event"] == "app_ready"]


async def test_workers_restart_a_replica_that_dies_and_stop_together(tmp_path: Path) -> None:
    (tmp_path / "idle_service.py").write_text(IDLE)
    supervisor = await Child.start(tmp_path, "idle_service:bus", "--workers", "2")
    pids = set()
    while len(pids) < 2:
        line = json.loads(await supervisor.until('"app_ready"'))
        if "workers" not in line:
            pids.add(line["pid"])
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    died = json.loads(await supervisor.until('"worker_died"'))
    assert died["exit_code"] == -signal.SIGKILL
    replacement = json.loads(await supervisor.until('"app_ready"'))
    assert replacement["pid"] not in pids
    supervisor.process.send_signal(signal.SIGTERM)
    code, _ = await supervisor.finish()
    assert code == 0
    [stopped] = [e for e in supervisor.events() if e["event"] == "workers_stopped"]
    assert set(stopped["exit_codes"].values()) == {0}
