"""A publisher in a process of its own, with an OpenTelemetry SDK: prints its send span.

python tests/integration/_otel_publisher.py <transport URL> <event type>
"""

import asyncio
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from quantum_core import EventBus

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # as an application does: the global provider


async def main(url: str, event_type: str) -> None:
    async with EventBus(url, service_name="otel-publisher") as bus:
        event_id = await bus.publish(event_type, {"symbol": "BTCUSDT", "price": 50_000.0})
    (span,) = exporter.get_finished_spans()
    print(
        json.dumps(
            {
                "event_id": event_id,
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "attributes": dict(span.attributes or {}),
            }
        )
    )


asyncio.run(main(*sys.argv[1:]))
