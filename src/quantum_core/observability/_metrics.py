"""Prometheus metrics of the bus, the policy store and the health checks: the numbers.

The hot path only adds to plain integers of a series object the consumer (or the bus)
looked up once; nothing here imports ``prometheus_client``. A collector
(``_collector.py``) turns the numbers into metric families when Prometheus scrapes, so an
event costs the same whether anybody scrapes or not, and a process that never serves
``/metrics`` pays only the additions.

Series live as long as the process: a bus stopped and made again goes on counting where
the last one stopped, as a Prometheus counter should.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..policy.store import PolicyStore

__all__ = [
    "BUCKETS",
    "ConsumerSeries",
    "Histogram",
    "Metrics",
    "PublishSeries",
    "metrics",
]

BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds in seconds of the duration histograms: handlers take 10 µs to 30 s."""


class Histogram:
    """Counts per bucket (not cumulative; the collector adds them up) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """Add one observation."""
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds


class PublishSeries:
    """What one service published on one event type."""

    __slots__ = ("duration", "events")

    def __init__(self) -> None:
        self.events = 0
        self.duration = Histogram()


class ConsumerSeries:
    """What one consumer group of this process received and did, and its sampled backlog."""

    __slots__ = (
        "dead_lettered",
        "dead_letters",
        "duration",
        "in_flight",
        "lag",
        "ok",
        "pending",
        "received",
        "retried",
        "timed_out",
    )

    def __init__(self) -> None:
        self.received = 0
        self.ok = 0
        self.retried = 0
        self.dead_lettered = 0
        self.timed_out = 0
        self.dead_letters = 0
        self.duration = Histogram()
        self.in_flight = 0
        self.pending: int | None = None
        self.lag: int | None = None


@dataclass
class Metrics:
    """Every series of this process, and whether metrics are on."""

    enabled: bool = False
    backlog_interval: float = 5.0
    registry: Any = None  # the prometheus_client registry the collector is registered on
    collector: Any = None
    publishing: dict[tuple[str, str, str], PublishSeries] = field(default_factory=dict)
    consuming: dict[tuple[str, str, str, str], ConsumerSeries] = field(default_factory=dict)
    replayed: dict[tuple[str, str, str], int] = field(default_factory=dict)
    policy_changes: dict[str, int] = field(default_factory=dict)
    health: dict[tuple[str, str], str] = field(default_factory=dict)
    policy_stores: weakref.WeakSet[PolicyStore] = field(default_factory=weakref.WeakSet)
    configured: bool = False  # by configure_metrics(): no automatic registration then

    def publish_series(self, service: str, event_type: str, transport: str) -> PublishSeries:
        """The series of ``(service, event_type, transport)``, made on first use."""
        key = (service, event_type, transport)
        series = self.publishing.get(key)
        if series is None:
            series = self.publishing[key] = PublishSeries()
        return series

    def consumer_series(
        self, service: str, event_type: str, group: str, transport: str
    ) -> ConsumerSeries:
        """The series of one consumer group, made on first use."""
        key = (service, event_type, group, transport)
        series = self.consuming.get(key)
        if series is None:
            series = self.consuming[key] = ConsumerSeries()
        return series

    def replayed_one(self, service: str, event_type: str, transport: str) -> None:
        """Count a dead letter replayed."""
        key = (service, event_type, transport)
        self.replayed[key] = self.replayed.get(key, 0) + 1

    def policy_changed(self, change: str) -> None:
        """Count a change this process made to the policy (``mode``, ``limits``, ``reset``)."""
        self.policy_changes[change] = self.policy_changes.get(change, 0) + 1

    def health_checked(self, service: str, statuses: dict[str, str]) -> None:
        """Keep the status of each check of the last report."""
        for check, status in statuses.items():
            self.health[(service, check)] = status


metrics = Metrics()
"""This process's metrics."""


def turned_on() -> Metrics | None:
    """The metrics when they are on, registering them the first time if nobody chose.

    Metrics are on whenever ``prometheus_client`` can be imported, registered on its
    default registry, unless :func:`configure_metrics` said otherwise. Called when a bus, a
    policy store or a health checker is made: never per event.
    """
    if not metrics.configured:
        metrics.configured = True
        try:
            import prometheus_client
        except ImportError:
            metrics.enabled = False
        else:
            _register(prometheus_client.REGISTRY)
    return metrics if metrics.enabled else None


def _register(registry: Any) -> None:
    from ._collector import Collector

    _unregister()
    collector = Collector(metrics)
    registry.register(collector)
    metrics.registry, metrics.collector, metrics.enabled = registry, collector, True


def _unregister() -> None:
    if metrics.registry is not None:
        metrics.registry.unregister(metrics.collector)
    metrics.registry = metrics.collector = None


def configure_metrics(
    *, registry: Any = None, enabled: bool = True, backlog_interval: float = 5.0
) -> None:
    """Choose where quantum_core's Prometheus metrics are registered, or turn them off.

    Without a call, metrics are on whenever ``prometheus_client`` is installed (the
    ``prometheus`` extra), on its default registry: serve it as ``/metrics`` and they are
    there (see docs/observability.md for every metric).

    Args:
        registry: A ``prometheus_client.CollectorRegistry``; None for the default one.
        enabled: False: count nothing and register nothing (an event costs no more than
            without the extra).
        backlog_interval: Seconds between two samples of each consumer group's pending and
            lag (and events in flight); sampled from the broker, not counted per event.

    Raises:
        ImportError: when ``prometheus_client`` is not installed and ``enabled`` is True.
    """
    from .._checks import check_seconds

    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    interval = check_seconds("backlog_interval", backlog_interval, positive=True)
    metrics.configured = True
    metrics.backlog_interval = interval
    if not enabled:
        _unregister()
        metrics.enabled = False
        return
    try:
        import prometheus_client
    except ImportError:
        raise ImportError(
            "configure_metrics() needs prometheus_client: "
            "pip install 'quantum-core-sdk[prometheus]'"
        ) from None
    _register(prometheus_client.REGISTRY if registry is None else registry)
