"""NATS JetStream fixtures: the shared server, a prefix of the test's own, a server to kill.

Each test gets a prefix of its own (its streams, consumers and KV bucket), deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator

import pytest

from quantum_core.testing.brokers import (
    delete_nats_namespace,
    nats_server_unavailable,
    new_namespace,
)
from service_helpers import free_port, require, service_missing

__all__ = ["NatsServer", "nats_prefix", "nats_url"]


@pytest.fixture
def nats_url() -> str:
    """The shared NATS server (with JetStream); the test must use a prefix of its own."""
    return require("nats")


@pytest.fixture
async def nats_prefix(nats_url: str) -> AsyncIterator[str]:
    """A prefix of the test's own on the shared NATS, its streams deleted afterwards."""
    prefix = new_namespace()
    yield prefix
    await delete_nats_namespace(nats_url, prefix)


class NatsServer:
    """A nats-server of the test's own, with JetStream on disk, that it may kill and restart.

    Its store directory outlives a restart, so streams and consumers come back as they
    were, as on a real server after a crash.
    """

    def __init__(self) -> None:
        binary = shutil.which("nats-server") or (
            "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
        )
        if binary is None:
            service_missing("nats-server", "not on PATH")
        self.binary = binary
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._store = tempfile.TemporaryDirectory(prefix="qc-nats-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self._store.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while nats_server_unavailable(self.url, timeout=0.2) is not None:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                service_missing(f"nats-server on port {self.port}", "it did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGKILL: no goodbye to the clients, as in a crash."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        self._store.cleanup()

    async def wait_ready(self) -> None:
        """Wait until JetStream answers (it restores its streams after the port opens)."""
        import nats

        deadline = time.monotonic() + 15
        while True:
            try:
                client = await nats.connect(self.url, connect_timeout=1, allow_reconnect=False)
                try:
                    await client.jetstream().account_info()
                    return
                finally:
                    await client.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
