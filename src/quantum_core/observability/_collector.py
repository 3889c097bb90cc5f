"""The Prometheus collector: the numbers of ``_metrics.py`` as metric families, per scrape.

Imported only when ``prometheus_client`` is (``_metrics.py`` registers it). Every metric is
listed, with its meaning, in docs/observability.md; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector as _Base

from ..models import RiskMode
from ._metrics import BUCKETS, Histogram, Metrics

__all__ = ["HEALTH_VALUES", "Collector"]

_CONSUMER = ["service", "event_type", "group", "transport"]
_PUBLISHER = ["service", "event_type", "transport"]
_BOUNDS = [f"{bound:g}" for bound in BUCKETS] + ["+Inf"]
HEALTH_VALUES = {"HEALTHY": 1.0, "DEGRADED": 0.5, "UNHEALTHY": 0.0}
"""quantum_core_health_status's value per status."""


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return list(zip(_BOUNDS, accumulate(histogram.counts), strict=True))


class Collector(_Base):
    """Reads this process's metrics when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        """Nothing to describe up front: the families are made per scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric family, with a sample per series."""
        m = self._metrics
        yield from self._publishing(m)
        yield from self._consuming(m)
        replayed = CounterMetricFamily(
            "quantum_core_dead_letters_replayed",
            "Dead letters published again by replay_dead_letter.",
            labels=_PUBLISHER,
        )
        for key, count in list(m.replayed.items()):
            replayed.add_metric(list(key), count)
        yield replayed
        yield from self._policy(m)
        health = GaugeMetricFamily(
            "quantum_core_health_status",
            "Status of each health check in the last report: 1 healthy, 0.5 degraded, 0 unhealthy.",
            labels=["service", "check"],
        )
        for (service, check), status in list(m.health.items()):
            health.add_metric([service, check], HEALTH_VALUES.get(status, 0.0))
        yield health

    @staticmethod
    def _publishing(m: Metrics) -> Iterator[Metric]:
        published = CounterMetricFamily(
            "quantum_core_events_published",
            "Events stored by the transport (publish and publish_many).",
            labels=_PUBLISHER,
        )
        duration = HistogramMetricFamily(
            "quantum_core_publish_duration_seconds",
            "Time of one publish or publish_many call, until the transport stored the events.",
            labels=_PUBLISHER,
        )
        for key, series in list(m.publishing.items()):
            published.add_metric(list(key), series.events)
            duration.add_metric(list(key), _buckets(series.duration), series.duration.sum)
        yield published
        yield duration

    @staticmethod
    def _consuming(m: Metrics) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "quantum_core_events_received",
            "Deliveries a consumer group of this process fetched (redeliveries count again).",
            labels=_CONSUMER,
        )
        handled = CounterMetricFamily(
            "quantum_core_events_handled",
            "Handler attempts by outcome: ok; retried (raised, another attempt follows); "
            "dead_lettered (raised on the last attempt); timed_out (cancelled at its timeout).",
            labels=[*_CONSUMER, "outcome"],
        )
        duration = HistogramMetricFamily(
            "quantum_core_handler_duration_seconds",
            "Time of one handler attempt.",
            labels=_CONSUMER,
        )
        in_flight = GaugeMetricFamily(
            "quantum_core_events_in_flight",
            "Events fetched and not finished (handled, waiting for a retry), sampled.",
            labels=_CONSUMER,
        )
        pending = GaugeMetricFamily(
            "quantum_core_consumer_pending_events",
            "Events delivered to the group and not acknowledged, sampled from the broker.",
            labels=_CONSUMER,
        )
        lag = GaugeMetricFamily(
            "quantum_core_consumer_lag_events",
            "Events stored on the topic and not yet delivered to the group, sampled.",
            labels=_CONSUMER,
        )
        dead_letters = CounterMetricFamily(
            "quantum_core_dead_letters_written",
            "Events set aside as dead letters (out of attempts, unreadable, or no usable key).",
            labels=_CONSUMER,
        )
        for key, s in list(m.consuming.items()):
            labels = list(key)
            received.add_metric(labels, s.received)
            for outcome, count in (
                ("ok", s.ok),
                ("retried", s.retried),
                ("dead_lettered", s.dead_lettered),
                ("timed_out", s.timed_out),
            ):
                handled.add_metric([*labels, outcome], count)
            duration.add_metric(labels, _buckets(s.duration), s.duration.sum)
            in_flight.add_metric(labels, s.in_flight)
            if s.pending is not None:
                pending.add_metric(labels, s.pending)
            if s.lag is not None:
                lag.add_metric(labels, s.lag)
            dead_letters.add_metric(labels, s.dead_letters)
        yield from (received, handled, duration, in_flight, pending, lag, dead_letters)

    @staticmethod
    def _policy(m: Metrics) -> Iterator[Metric]:
        mode = GaugeMetricFamily(
            "quantum_core_risk_mode",
            "1 for the risk mode in force in this process's policy store, 0 for the others.",
            labels=["mode"],
        )
        active = None
        for store in list(m.policy_stores):
            try:
                active = store.policy.active_mode
            except RuntimeError:  # not loaded yet
                continue
        if active is not None:
            for each in RiskMode:
                mode.add_metric([each.value], 1.0 if each is active else 0.0)
        yield mode
        changes = CounterMetricFamily(
            "quantum_core_policy_changes",
            "Changes this process made to the risk policy: mode, limits or reset.",
            labels=["change"],
        )
        for change, count in list(m.policy_changes.items()):
            changes.add_metric([change], count)
        yield changes
