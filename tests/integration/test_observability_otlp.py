"""Spans exported over OTLP/HTTP to a real OpenTelemetry collector (rotel) on loopback."""

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from quantum_core import EventBus, trace_context
from quantum_core.testing import eventually


async def test_a_flow_s_spans_reach_an_otlp_receiver(otlp_receiver):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from quantum_core import configure_tracing

    provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces"))
    )
    configure_tracing(tracer_provider=provider)
    try:
        bus = EventBus("memory://", service_name="otlp")
        handled = asyncio.Event()

        async def on_tick(payload):
            handled.set()

        bus.subscribe("market.data.update", on_tick, name="on_tick")
        async with bus:
            with trace_context.scope() as trace_id:
                await bus.publish("market.data.update", {"symbol": "BTCUSDT"})
            await asyncio.wait_for(handled.wait(), 5)
        assert provider.force_flush(10_000)
        await eventually(
            lambda: "process market.data.update" in otlp_receiver.text(), "the spans received"
        )
    finally:
        configure_tracing()
        provider.shutdown()

    received = otlp_receiver.text()
    spans = re.findall(
        r"Trace ID\s*: (\w+)\s+Parent ID\s*: (\w*)\s+ID\s*: (\w+)\s+Name\s*: ([^\n]+)\s+"
        r"Kind\s*: (\w+)",
        received,
    )
    by_name = {
        name.strip(): (trace, parent, span, kind) for trace, parent, span, name, kind in spans
    }
    send = by_name["send market.data.update"]
    process = by_name["process market.data.update"]
    assert send[0] == process[0] == trace_id  # one trace, the flow's id
    assert process[1] == send[2]  # the consumer's parent is the producer's span
    assert (send[3], process[3]) == ("SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER")
    assert "messaging.system: Str(memory)" in received
    assert "service.name: Str(otlp-test)" in received


def test_one_tick_is_one_trace_across_the_three_domains(otlp_receiver):
    """The demo (market data, AI engine, risk, execution) with the example's OTLP wiring."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint}
    subprocess.run(
        [sys.executable, "-m", "examples.trading.run", "--bus", "memory://", "--interval", "0"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )  # the provider exports what is batched at exit
    deadline = time.monotonic() + 10
    while "process risk.signal.approved" not in otlp_receiver.text():
        assert time.monotonic() < deadline, "no execution span received"
        time.sleep(0.05)
    received = otlp_receiver.text()
    spans = re.findall(
        r"Trace ID\s*: (\w+)\s+Parent ID\s*: (\w*)\s+ID\s*: (\w+)\s+Name\s*: ([^\n]+)", received
    )
    by_id = {span: (trace, parent, name.strip()) for trace, parent, span, name in spans}
    (execution, *_) = [
        s for s, (_, _, name) in by_id.items() if name == "process risk.signal.approved"
    ]
    chain = []
    span = execution
    while span in by_id:  # walk up to the tick's send span
        trace, parent, name = by_id[span]
        chain.append((trace, name))
        span = parent
    assert [name for _, name in chain] == [
        "process risk.signal.approved",
        "send risk.signal.approved",
        "process ai.signal.generated",
        "send ai.signal.generated",
        "process market.data.update",
        "send market.data.update",
    ]
    assert len({trace for trace, _ in chain}) == 1
