"""Fixtures for the observability tests: an SDK with an in-memory exporter, an OTLP receiver."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_helpers import free_port


@pytest.fixture
def spans() -> Iterator[object]:
    """An OpenTelemetry SDK quantum_core makes its spans with; its finished spans, in memory.

    Given to quantum_core with ``configure_tracing(tracer_provider=...)``, not set as the
    global provider (which can be set once a process): the other tests see no SDK.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from quantum_core import configure_tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure_tracing(tracer_provider=provider)
    try:
        yield exporter
    finally:
        configure_tracing()
        provider.shutdown()


class OtlpReceiver:
    """rotel (an OpenTelemetry collector, PyPI's ``rotel``) on a free loopback port.

    It prints what it receives (``--debug-log traces --debug-log-verbosity detailed``) to
    its standard output, a file here, and exports nowhere (``blackhole``).
    """

    def __init__(self, tmp_path: Path) -> None:
        import rotel

        binary = Path(rotel.__file__).parent / "rotel-agent"
        self.http_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.http_port}"
        self.output = tmp_path / "rotel.out"
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "start",
                    "--otlp-http-endpoint",
                    f"127.0.0.1:{self.http_port}",
                    "--otlp-grpc-endpoint",
                    f"127.0.0.1:{free_port()}",
                    "--exporter",
                    "blackhole",
                    "--debug-log",
                    "traces",
                    "--debug-log-verbosity",
                    "detailed",
                    "--log-file",
                    str(tmp_path / "rotel.log"),
                    "--pid-file",
                    str(tmp_path / "rotel.pid"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
            )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"rotel exited with {self.process.returncode}: {self.text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.http_port)) == 0:
                    return
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"rotel did not listen within {timeout} s: {self.text()}")

    def text(self) -> str:
        """What it printed so far, colour codes removed."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.output.read_text(errors="replace"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def otlp_receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP receiver on loopback; ``.text()`` is what it received."""
    receiver = OtlpReceiver(tmp_path)
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def metrics_registry() -> Iterator[object]:
    """quantum_core's metrics on a registry of the test's own, backlogs sampled every 50 ms."""
    from prometheus_client import CollectorRegistry

    from quantum_core import configure_metrics

    registry = CollectorRegistry()
    configure_metrics(registry=registry, backlog_interval=0.05)
    try:
        yield registry
    finally:
        configure_metrics()  # the default registry, as without a call
