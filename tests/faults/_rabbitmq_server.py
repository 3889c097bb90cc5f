"""A rabbitmq-server of the test's own, on free ports, that a test may stop and restart.

Its data (mnesia) directory outlives a restart, as a real broker's disk does, so durable
queues and persistent messages come back. It never touches the shared broker: its own node
name, ports, cookie (HOME) and directories. Starting one takes about ten seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from service_helpers import free_port, service_missing

_SBIN = Path("/usr/lib/rabbitmq/bin")


def _tool(name: str) -> str | None:
    own = _SBIN / name  # the unwrapped script: the /usr/sbin wrapper switches user
    return str(own) if own.exists() else shutil.which(name)


class RabbitMQServer:
    """``start()``, ``stop()`` (a clean shutdown) and ``start()`` again on the same data."""

    def __init__(self) -> None:
        self._server = _tool("rabbitmq-server")
        self._ctl = _tool("rabbitmqctl")
        if self._server is None or self._ctl is None:
            service_missing("rabbitmq-server", "not installed")
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._dir = tempfile.mkdtemp(prefix="qc-rabbitmq-")
        Path(self._dir, "plugins").write_text("[].\n")
        self.node = f"qc{os.getpid()}{os.urandom(2).hex()}@localhost"
        self._env = {
            **os.environ,
            "HOME": self._dir,  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": f"{self._dir}/mnesia",
            "RABBITMQ_LOG_BASE": f"{self._dir}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{self._dir}/plugins",
            "RABBITMQ_PID_FILE": f"{self._dir}/pid",
            "RABBITMQ_CONFIG_FILE": f"{self._dir}/none",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{self._dir}/none-advanced",
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        assert self._server is not None
        self._process = subprocess.Popen(
            [self._server],
            env=self._env,
            cwd=self._dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                service_missing(f"a rabbitmq-server of the test's own ({self.node})", "no start")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return sock.recv(8).startswith(b"\x01")  # connection.start
        except OSError:
            return False

    def stop(self) -> None:
        """Shut the node down cleanly (the data stays for the next start)."""
        assert self._ctl is not None
        subprocess.run(
            [self._ctl, "-n", self.node, "shutdown"],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        self.kill()

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, 9)  # its own session: the script and the Erlang VM
        if process is not None:
            process.wait(timeout=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
