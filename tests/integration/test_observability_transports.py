"""Spans on every transport: a flow published in one process and handled in another.

Runs once per transport of the quantum_core_transport fixture (a Kafka transport, once it is
in the plugin's list, too). On memory:// the publisher is another bus of this process (a
memory broker lives in one process); on the others it is a process of its own with its own
SDK, so the only link between the two spans is what the event carries.
"""

import asyncio
import json
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from quantum_core import EventBus, current_event, trace_context
from quantum_core.testing import eventually

PUBLISHER = Path(__file__).with_name("_otel_publisher.py")
SYSTEM = {"memory": "memory", "redis": "redis", "nats": "nats", "amqp": "rabbitmq"}


async def publish_from_another_process(url: str, event_type: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PUBLISHER),
        url,
        event_type,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def publish_here(url: str, event_type: str, exporter) -> dict:
    async with EventBus(url, service_name="otel-publisher") as bus:
        event_id = await bus.publish(event_type, {"symbol": "BTCUSDT", "price": 50_000.0})
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    return {
        "event_id": event_id,
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "attributes": dict(span.attributes),
    }


async def test_one_trace_id_from_the_publisher_to_the_handler(quantum_core_transport, spans):
    scheme = urlsplit(quantum_core_transport).scheme
    system = SYSTEM.get(scheme, scheme)
    event_type = f"otel.tick.{uuid.uuid4().hex[:8]}"
    seen = asyncio.get_running_loop().create_future()

    async def on_tick(payload):
        span_context = trace.get_current_span().get_span_context()
        seen.set_result((trace_context.get(), current_event(), span_context))

    consumer = EventBus(quantum_core_transport, service_name="otel-consumer")
    consumer.subscribe(event_type, on_tick, name="on_tick")
    async with consumer:
        if scheme == "memory":  # published from a context of its own, by another bus
            producer = await asyncio.create_task(
                publish_here(quantum_core_transport, event_type, spans), context=None
            )
        else:
            producer = await publish_from_another_process(quantum_core_transport, event_type)
        handler_trace_id, event, span_context = await asyncio.wait_for(seen, 20)

    assert producer["name"] == f"send {event_type}"
    assert producer["kind"] == "PRODUCER"
    assert producer["attributes"]["messaging.system"] == system
    assert producer["attributes"]["messaging.destination.name"] == event_type
    assert producer["attributes"]["messaging.message.id"] == producer["event_id"]
    (process,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert process.name == f"process {event_type}"
    # one trace id end to end: the producer's span, the event, the handler's trace_context
    assert f"{process.context.trace_id:032x}" == producer["trace_id"]
    assert process.parent is not None
    assert process.parent.is_remote
    assert f"{process.parent.span_id:016x}" == producer["span_id"]
    assert event.trace_id == handler_trace_id == producer["trace_id"]
    assert event.headers["traceparent"].split("-")[1:3] == [
        producer["trace_id"],
        producer["span_id"],
    ]
    assert span_context.span_id == process.context.span_id  # current in the handler
    assert process.attributes["messaging.system"] == system
    assert process.attributes["messaging.consumer.group.name"] == "otel-consumer:on_tick"
    assert process.attributes["messaging.message.id"] == producer["event_id"]
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["quantum_core.attempt"] == 1


async def test_metrics_of_a_flow_with_a_retry_and_a_dead_letter(
    quantum_core_transport, metrics_registry
):
    scheme = urlsplit(quantum_core_transport).scheme
    service = f"metrics-{uuid.uuid4().hex[:8]}"
    event_type = f"otel.order.{uuid.uuid4().hex[:8]}"
    attempts = {"flaky": 0, "broken": 0}
    done = asyncio.Event()

    async def flaky(payload):
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise ConnectionError("the exchange hiccuped")

    async def broken(payload):
        attempts["broken"] += 1
        if attempts["broken"] == 2:
            done.set()
        raise ValueError("never works")

    def labels(name):
        return {
            "service": service,
            "event_type": event_type,
            "group": f"{service}:{name}",
            "transport": SYSTEM.get(scheme, scheme),
        }

    def value(metric, name, **extra):
        return metrics_registry.get_sample_value(metric, labels(name) | extra)

    bus = EventBus(quantum_core_transport, service_name=service, max_attempts=2, retry_backoff=0.01)
    bus.subscribe(event_type, flaky, name="flaky")
    bus.subscribe(event_type, broken, name="broken")
    async with bus:
        await bus.publish(event_type, {"order": 1})
        await asyncio.wait_for(done.wait(), 20)
        await eventually(
            lambda: value("quantum_core_dead_letters_written_total", "broken") == 1,
            "the dead letter written",
        )
        await eventually(
            lambda: value("quantum_core_consumer_pending_events", "flaky") is not None,
            "a backlog sample",
        )

    published = {
        "service": service,
        "event_type": event_type,
        "transport": labels("x")["transport"],
    }
    assert metrics_registry.get_sample_value("quantum_core_events_published_total", published) == 1
    assert (
        metrics_registry.get_sample_value("quantum_core_publish_duration_seconds_count", published)
        == 1
    )
    handled = "quantum_core_events_handled_total"
    assert value(handled, "flaky", outcome="retried") == 1
    assert value(handled, "flaky", outcome="ok") == 1
    assert value(handled, "broken", outcome="retried") == 1
    assert value(handled, "broken", outcome="dead_lettered") == 1
    assert value(handled, "broken", outcome="ok") == 0
    assert value("quantum_core_handler_duration_seconds_count", "flaky") == 2
    assert value("quantum_core_dead_letters_written_total", "flaky") == 0
    assert value("quantum_core_events_received_total", "flaky") >= 1
    # sampled while the bus ran; a stopped bus leaves no stale backlog behind
    assert value("quantum_core_consumer_pending_events", "flaky") is None
    assert value("quantum_core_events_in_flight", "flaky") == 0
