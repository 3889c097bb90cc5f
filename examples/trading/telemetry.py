"""Tracing for the example's processes: an OpenTelemetry SDK exporting over OTLP/HTTP.

quantum_core makes its spans through the OpenTelemetry API as soon as an SDK is configured;
this is all the wiring there is. Only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (such as
``http://127.0.0.1:4318``, Jaeger's or a collector's OTLP/HTTP port), and it needs
``pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http``.
"""

from __future__ import annotations

import os
from typing import Any


def configure_tracing_from_env(service_name: str) -> Any:
    """Send this process's spans to ``OTEL_EXPORTER_OTLP_ENDPOINT``; None when it is unset.

    Returns the tracer provider (``shutdown()`` exports what is still batched; it also runs
    at exit).
    """
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the variable
    trace.set_tracer_provider(provider)
    return provider
