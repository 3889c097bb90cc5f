"""Spans, log lines and metrics of the bus, the policy store and the health checks (memory).

The same flow on every transport, across processes: tests/integration/
test_observability_transports.py. The OTLP export: tests/integration/test_observability_otlp.py.
"""

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from quantum_core import (
    EventBus,
    HealthChecker,
    PolicyStore,
    configure_metrics,
    configure_tracing,
    get_logger,
    trace_context,
)
from quantum_core.bus.envelope import Envelope, encode, new_event_id, publish_time
from quantum_core.models import RiskMode
from quantum_core.testing import eventually

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def by_kind(exporter, kind):
    return [s for s in exporter.get_finished_spans() if s.kind is kind]


def hex_trace(span):
    return f"{span.context.trace_id:032x}"


async def test_a_failing_attempt_records_the_error_and_its_retry_then_its_dead_letter(spans):
    bus = EventBus("memory://", service_name="otel", max_attempts=2, retry_backoff=0.01)
    failed = asyncio.Event()

    async def broken(payload):
        if payload["n"] == 2:
            failed.set()
        raise ValueError("refused: password=hunter2")

    bus.subscribe("otel.failing", broken, name="broken")
    async with bus:
        await bus.publish("otel.failing", {"n": 1})
        await eventually(lambda: len(by_kind(spans, SpanKind.CONSUMER)) == 2, "two attempts")
    first, last = sorted(by_kind(spans, SpanKind.CONSUMER), key=lambda s: s.start_time)
    for span in (first, last):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "ValueError"
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert "hunter2" not in str(dict(exception.attributes))  # redacted like a log line
        assert exception.attributes["exception.type"] == "ValueError"
    assert [e.name for e in first.events] == ["exception", "retry"]
    assert first.attributes["quantum_core.attempt"] == 1
    assert [e.name for e in last.events] == ["exception", "dead_letter"]
    assert last.attributes["quantum_core.attempt"] == 2
    assert hex_trace(first) == hex_trace(last)


async def test_publish_many_is_one_send_span_with_the_batch_size(spans):
    bus = EventBus("memory://", service_name="otel")
    async with bus:
        ids = await bus.publish_many("otel.batch", [{"n": n} for n in range(3)])
    (send,) = by_kind(spans, SpanKind.PRODUCER)
    assert send.name == "send otel.batch"
    assert send.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in send.attributes
    assert len(ids) == 3


async def test_a_failed_publish_ends_its_span_with_the_error(spans):
    bus = EventBus("memory://", service_name="otel")
    await bus.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await bus.publish("otel.late", {})
    (send,) = by_kind(spans, SpanKind.PRODUCER)
    assert send.attributes["error.type"] == "RuntimeError"


async def handled_raw(headers, trace_id=None):
    """Put an envelope with ``headers`` on a memory broker as a publisher without an SDK would."""
    event_type = f"otel.raw.{uuid.uuid4().hex[:6]}"
    bus = EventBus("memory://", service_name="otel")
    seen = asyncio.get_running_loop().create_future()

    async def handler(payload):
        get_logger("otel.test").info("handling")
        seen.set_result(trace_context.get())

    bus.subscribe(event_type, handler, name="raw")
    async with bus:
        envelope = Envelope(
            id=new_event_id(),
            type=event_type,
            payload={},
            trace_id=trace_id or trace_context.generate(),
            time=publish_time(),
            source="elsewhere",
            headers=headers,
        )
        await bus.transport.publish(event_type, (encode(envelope),))
        handler_trace_id = await asyncio.wait_for(seen, 5)
        stats = await bus.stats()
    return handler_trace_id, stats[f"{event_type} -> raw"], envelope


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
        "x" * 5000,
    ],
)
async def test_an_unreadable_traceparent_starts_a_new_trace_with_a_debug_line(
    spans, log_lines, traceparent
):
    handler_trace_id, stats, envelope = await handled_raw({"traceparent": traceparent})
    assert (stats.handled, stats.failed) == (1, 0)  # never a failed handler
    (process,) = by_kind(spans, SpanKind.CONSUMER)
    assert process.parent is None  # a new trace
    assert handler_trace_id == hex_trace(process)
    (line,) = log_lines.named("event_traceparent_ignored")
    assert line["level"] == "debug"
    assert line["event_id"] == envelope.id
    assert len(line["traceparent"]) <= 100


async def test_any_w3c_flags_byte_is_read(spans):
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    handler_trace_id, _stats, _ = await handled_raw(
        {"traceparent": f"00-{trace_id}-{span_id}-03", "tracestate": "vendor=value"}, trace_id
    )
    (process,) = by_kind(spans, SpanKind.CONSUMER)
    assert hex_trace(process) == trace_id == handler_trace_id
    assert f"{process.parent.span_id:016x}" == span_id
    assert process.parent.trace_flags.sampled
    assert process.context.trace_state.get("vendor") == "value"


async def test_an_event_from_a_publisher_without_sdk_keeps_its_trace_id(spans):
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    handler_trace_id, _, _ = await handled_raw({}, trace_id)
    (process,) = by_kind(spans, SpanKind.CONSUMER)
    assert hex_trace(process) == trace_id == handler_trace_id


async def test_log_lines_in_a_handler_carry_the_span_s_trace_and_span_ids(spans, log_lines):
    await handled_raw({})
    (process,) = by_kind(spans, SpanKind.CONSUMER)
    (line,) = log_lines.named("handling")
    assert line["trace_id"] == hex_trace(process)
    assert line["span_id"] == f"{process.context.span_id:016x}"


async def test_a_current_w3c_trace_id_is_the_trace_of_the_send_span(spans):
    bus = EventBus("memory://", service_name="otel")
    async with bus:
        with trace_context.scope() as trace_id:
            await bus.publish("otel.scoped", {})
    (send,) = by_kind(spans, SpanKind.PRODUCER)
    assert hex_trace(send) == trace_id


async def test_a_policy_switch_is_a_span_and_its_announcement_is_in_its_trace(spans):
    bus = EventBus("memory://", service_name="otel")
    store = PolicyStore(event_bus=bus)
    async with bus:
        await store.initialize()
        await store.switch_mode(RiskMode.DEFENSIVE, updated_by="test")
    (switch,) = [s for s in spans.get_finished_spans() if s.name == "policy switch_mode"]
    assert switch.attributes["quantum_core.policy.active_mode"] == "DEFENSIVE"
    (announce,) = by_kind(spans, SpanKind.PRODUCER)
    assert announce.name == "send policy.mode.changed"
    assert announce.parent.span_id == switch.context.span_id
    await store.close()


async def test_each_health_check_is_a_span(spans):
    async def fine():
        return True

    async def down():
        return False

    async with HealthChecker("otel", system=False) as checker:
        checker.register("fine", fine)
        checker.register("down", down)
        await checker.get_health_report()
    checks = {s.name: s for s in spans.get_finished_spans() if s.name.startswith("health")}
    assert set(checks) == {"health check fine", "health check down"}
    assert checks["health check down"].attributes["quantum_core.health.status"] == "UNHEALTHY"


async def test_no_spans_when_tracing_is_turned_off(spans):
    configure_tracing(enabled=False)
    bus = EventBus("memory://", service_name="otel")
    async with bus:
        await bus.publish("otel.off", {})
    assert spans.get_finished_spans() == ()


def test_configure_tracing_says_what_it_takes():
    with pytest.raises(TypeError, match="TracerProvider"):
        configure_tracing(tracer_provider="jaeger")
    with pytest.raises(TypeError, match="True or False"):
        configure_tracing(enabled="yes")


def test_configure_metrics_says_what_it_takes():
    with pytest.raises(ValueError, match="backlog_interval"):
        configure_metrics(backlog_interval=0)
    with pytest.raises(TypeError, match="True or False"):
        configure_metrics(enabled=1)


def test_without_an_sdk_nothing_changes_and_neither_library_is_loaded_by_the_import():
    code = """
import asyncio, sys
import quantum_core
assert "prometheus_client" not in sys.modules, "import quantum_core loaded prometheus_client"
from quantum_core import EventBus

async def main():
    bus = EventBus("memory://", service_name="plain")
    seen = asyncio.get_running_loop().create_future()
    async def handler(payload):
        seen.set_result(None)
    bus.subscribe("plain.tick", handler)
    async with bus:
        await bus.publish("plain.tick", {})
        await seen
    assert "quantum_core.observability._spans" not in sys.modules, "spans made without an SDK"

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_an_event_published_without_an_sdk_has_no_trace_headers():
    bus = EventBus("memory://", service_name="plain")
    seen = asyncio.get_running_loop().create_future()

    async def handler(payload):
        from quantum_core import current_event

        seen.set_result(dict(current_event().headers))

    bus.subscribe("plain.headers", handler)
    async with bus:
        await bus.publish("plain.headers", {}, headers={"x-source": "test"})
        assert await asyncio.wait_for(seen, 5) == {"x-source": "test"}


def test_the_docs_list_every_metric(metrics_registry):
    from quantum_core.observability._collector import Collector
    from quantum_core.observability._metrics import metrics

    exposed = set()
    for family in Collector(metrics).collect():
        suffix = "_total" if family.type == "counter" else ""
        exposed.add(family.name + suffix)
    documented = set(re.findall(r"^\| `(quantum_core_[a-z_]+)`", DOCS.read_text(), re.M))
    assert documented == exposed


async def test_metrics_of_timeouts_replays_policy_changes_and_health(metrics_registry):
    service = f"metrics-{uuid.uuid4().hex[:6]}"
    bus = EventBus("memory://", service_name=service, max_attempts=1)

    async def slow(payload):
        await asyncio.sleep(10)

    bus.subscribe("otel.slow", slow, name="slow", timeout=0.01)
    store = PolicyStore(event_bus=bus)
    group = {"service": service, "event_type": "otel.slow", "group": f"{service}:slow"}
    group["transport"] = "memory"

    def value(name, labels):
        return metrics_registry.get_sample_value(name, labels)

    async with bus:
        await bus.publish_many("otel.slow", [{}, {}])
        await eventually(
            lambda: value("quantum_core_dead_letters_written_total", group) == 2, "dead letters"
        )
        (letter, _) = await bus.dead_letters("otel.slow")
        await bus.replay_dead_letter("otel.slow", letter.id)
        await store.initialize()
        await store.switch_mode(RiskMode.DEFENSIVE, updated_by="test")
        await store.update_config(RiskMode.DEFENSIVE, updated_by="test", max_leverage=2)
    async with HealthChecker(service, system=False) as checker:

        async def degraded():
            from quantum_core import HealthStatus

            return HealthStatus.DEGRADED

        checker.register("exchange", degraded)
        await checker.get_health_report()

    handled = "quantum_core_events_handled_total"
    assert value(handled, group | {"outcome": "timed_out"}) >= 2
    assert value(handled, group | {"outcome": "dead_lettered"}) == 0  # counted as timed out
    published = {"service": service, "event_type": "otel.slow", "transport": "memory"}
    assert value("quantum_core_events_published_total", published) == 2
    assert value("quantum_core_publish_duration_seconds_count", published) == 1  # one call
    assert value("quantum_core_dead_letters_replayed_total", published) == 1
    assert value("quantum_core_policy_changes_total", {"change": "mode"}) >= 1
    assert value("quantum_core_policy_changes_total", {"change": "limits"}) >= 1
    assert value("quantum_core_risk_mode", {"mode": "DEFENSIVE"}) == 1
    assert value("quantum_core_health_status", {"service": service, "check": "exchange"}) == 0.5
    await store.close()


def test_metrics_turned_off_register_nothing(metrics_registry):
    configure_metrics(enabled=False)
    bus = EventBus("memory://", service_name="off")
    assert bus._metrics is None
    assert not [m for m in metrics_registry.collect() if m.name.startswith("quantum_core")]


def test_the_grafana_dashboard_uses_only_metrics_that_exist():
    import json

    dashboard = json.loads(
        (DOCS.parents[1] / "examples" / "grafana" / "quantum_core.json").read_text()
    )
    documented = set(re.findall(r"^\| `(quantum_core_[a-z_]+)`", DOCS.read_text(), re.M))
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"quantum_core_[a-z_]+", target["expr"])
    }
    assert used
    assert used <= documented


async def test_bad_publish_arguments_are_refused_as_without_an_sdk(spans):
    bus = EventBus("memory://", service_name="otel")
    with pytest.raises(TypeError, match="headers must be a dict"):
        await bus.publish("otel.bad", {}, headers=[("a", "b")])
    with pytest.raises(ValueError, match="invalid trace id"):
        await bus.publish("otel.bad", {}, trace_id=42)
    with pytest.raises(ValueError, match="invalid event type"):
        await bus.publish("otel bad", {})
    assert all(s.status.status_code is StatusCode.ERROR for s in spans.get_finished_spans())


async def test_stop_does_not_wait_for_a_backlog_sample_on_a_broker_that_hangs(metrics_registry):
    bus = EventBus("memory://", service_name=f"hang-{uuid.uuid4().hex[:6]}")

    async def noop(payload):
        pass

    bus.subscribe("otel.hang", noop, name="noop")
    sampling = asyncio.Event()

    async def hanging_backlog():
        sampling.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # as a client tearing down a dead connection: slowly
            await asyncio.sleep(5)
            raise

    await bus.start()
    bus._consumers[0].subscription.backlog = hanging_backlog  # the next sample hangs
    bus._sampler.cancel()  # restart the sampler, so that it samples now
    bus._sampler = asyncio.create_task(bus._sample_backlogs(bus._metrics))
    await asyncio.wait_for(sampling.wait(), 5)
    started = asyncio.get_running_loop().time()
    await bus.stop()
    assert asyncio.get_running_loop().time() - started < 2
    bus._sampler.cancel()
