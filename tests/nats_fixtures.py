"""NATS JetStream fixtures for the contract suite and the integration tests.

Each test gets a prefix of its own (its streams, consumers and KV bucket), deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from quantum_core import Transport
from quantum_core.testing import TransportFeatures
from service_helpers import service_missing

__all__ = [
    "NATS_URL",
    "NatsServer",
    "delete_nats_prefix",
    "nats_prefix",
    "nats_transport_factory",
    "nats_transport_features",
    "nats_url",
]

NATS_URL = os.environ.get("QUANTUM_TEST_NATS_URL", "nats://127.0.0.1:4222")
ACK_WAIT = 1.0  # seconds: how soon the contract's abandoned events come back


def _nats_answers(url: str, timeout: float = 1.0) -> str | None:
    """None if a NATS server greets us on the URL's host and port, else why not."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 4222), timeout=timeout
        ) as sock:
            greeting = sock.recv(4096)
    except OSError as exc:
        return str(exc)
    if not greeting.startswith(b"INFO "):
        return f"not a NATS server (it said {greeting[:40]!r})"
    if b'"jetstream":true' not in greeting.replace(b" ", b""):
        return "the server runs without JetStream (start it with -js)"
    return None


@pytest.fixture
def nats_url() -> str:
    """The shared NATS server (with JetStream); the test must use a prefix of its own."""
    try:
        import nats  # noqa: F401 - only whether it is there
    except ImportError as exc:
        service_missing("nats-py (pip install -e '.[dev]')", exc)
    why = _nats_answers(NATS_URL)
    if why is not None:
        service_missing(f"NATS JetStream at {NATS_URL}", why)
    return NATS_URL


async def delete_nats_prefix(url: str, prefix: str) -> None:
    """Delete the streams (with their consumers) and the KV bucket of ``prefix``."""
    import nats
    import nats.js.errors

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for stream in (prefix, f"{prefix}_dead_letters", f"KV_{prefix}_handled"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    finally:
        await client.close()


@pytest.fixture
async def nats_prefix(nats_url: str) -> AsyncIterator[str]:
    """A prefix of the test's own on the shared NATS, its streams deleted afterwards."""
    prefix = f"qc_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    await delete_nats_prefix(nats_url, prefix)


@pytest.fixture
def nats_transport_factory(nats_url: str, nats_prefix: str) -> Callable[[], Transport]:
    from quantum_core.transports.nats import NatsJetStreamTransport

    return lambda: NatsJetStreamTransport(nats_url, prefix=nats_prefix, ack_wait=ACK_WAIT)


@pytest.fixture
def nats_transport_features() -> TransportFeatures:
    # A consumer that closes hands its messages back at once (NAK); one that dies leaves
    # them for ack_wait. Both are well within two seconds here.
    return TransportFeatures(redelivery_timeout=2.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        self.port = _free_port()
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
        while _nats_answers(self.url, timeout=0.2) is not None:
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
