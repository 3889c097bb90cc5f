"""Real services for integration tests: the shared Redis, and redis-servers of a test's own.

A missing service skips the test on a developer machine and fails it when CI is set: CI
must run every test against every service.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from service_helpers import free_port, service_missing


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Redis answers PING on host:port (plain socket: no event loop needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server of the test's own, without persistence, that the test may stop and restart.

    Restarting it on the same port gives an empty server, as a Redis without persistence
    comes back after a crash.
    """

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            service_missing("redis-server", "not on PATH")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not ping("127.0.0.1", self.port, timeout=0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                service_missing(f"redis-server on port {self.port}", "it did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)
