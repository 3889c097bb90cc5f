"""Traces (OpenTelemetry) and metrics (Prometheus) of the bus, the policy store and the checks.

Neither needs wiring in quantum_core: the bus knows every publish, handler attempt, dead
letter and backlog. Spans are made once the application configures an OpenTelemetry SDK
(the ``otel`` extra installs the API only, as OpenTelemetry asks of libraries); metrics are
on whenever ``prometheus_client`` is installed (the ``prometheus`` extra). Neither library
is imported by ``import quantum_core``: see ``_gate.py`` and ``_metrics.py`` for why and what
each costs. docs/observability.md has the spans, the metric table and the wiring.
"""

from __future__ import annotations

from ._gate import configure_tracing
from ._metrics import configure_metrics

__all__ = ["configure_metrics", "configure_tracing"]
