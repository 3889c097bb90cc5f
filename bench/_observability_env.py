"""What a benchmark process has of OpenTelemetry and Prometheus: ``QC_BENCH_OBSERVABILITY``.

Imported by ``_worker.py`` before anything else, so that it decides what ``import
quantum_core`` (and redis-py, which looks for the OpenTelemetry SDK itself) can find:

* ``without`` (or unset): neither ``opentelemetry`` nor ``prometheus_client`` can be
  imported, as if neither extra were installed.
* ``otel``: the OpenTelemetry API and SDK are installed, no SDK is configured (the default
  of an application that installed the extra and did nothing); no prometheus_client.
* ``sdk``: an SDK is configured, with a batch span processor whose exporter drops every
  span (exporting "nowhere": the cost of making spans, not of a network); no
  prometheus_client.
* ``prometheus``: prometheus_client is installed (metrics on, as by default); no
  OpenTelemetry.
"""

from __future__ import annotations

import os
import sys
from importlib.abc import MetaPathFinder
from typing import Any

VARIABLE = "QC_BENCH_OBSERVABILITY"
VARIANTS = ("without", "otel", "sdk", "prometheus")


class _Hidden(MetaPathFinder):
    def __init__(self, *roots: str) -> None:
        self.roots = roots

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.roots:
            raise ImportError(f"{fullname} hidden by {VARIABLE}")


def _configure_sdk() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    trace.set_tracer_provider(provider)


variant = os.environ.get(VARIABLE, "without")
if variant not in VARIANTS:
    raise SystemExit(f"{VARIABLE}={variant!r}: expected one of {', '.join(VARIANTS)}")
hidden = {
    "without": ("opentelemetry", "prometheus_client"),
    "otel": ("prometheus_client",),
    "sdk": ("prometheus_client",),
    "prometheus": ("opentelemetry",),
}[variant]
sys.meta_path.insert(0, _Hidden(*hidden))
if variant == "sdk":
    _configure_sdk()
