"""A broker outage is logged once when it starts and once when it ends, with capped backoff."""

import asyncio

from quantum_core import EventBus, MemoryTransport
from quantum_core.bus import _outage
from quantum_core.errors import TransportError
from quantum_core.testing import EventRecorder, eventually
from sleep_recorder import record_waits


class _FlakyTransport(MemoryTransport):
    """A memory transport whose fetches fail while ``down`` is true."""

    def __init__(self):
        super().__init__()
        self.down = False
        self.failed_fetches = 0

    async def subscribe(self, topic, *, group, consumer, from_beginning=False):
        subscription = await super().subscribe(
            topic, group=group, consumer=consumer, from_beginning=from_beginning
        )
        fetch = subscription.fetch

        async def flaky_fetch(max_count, timeout):
            if self.down:
                self.failed_fetches += 1
                raise TransportError("connection refused (simulated)")
            return await fetch(max_count, min(timeout, 0.05))

        subscription.fetch = flaky_fetch
        return subscription


async def test_an_outage_logs_one_warning_and_one_recovery(log_lines, monkeypatch):
    monkeypatch.setattr(_outage, "_OUTAGE_BACKOFF", 0.001)
    monkeypatch.setattr(_outage, "_OUTAGE_BACKOFF_MAX", 0.02)  # capped: many retries
    transport = _FlakyTransport()
    recorder = EventRecorder()
    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", recorder, name="h")
    async with bus:
        for outage in range(2):
            transport.down = True
            await asyncio.sleep(0.3)
            transport.down = False
            await bus.publish("t.x", {"n": outage})
            await recorder.wait_for(outage + 1)
    assert transport.failed_fetches >= 10  # retried all along, at the capped pace
    assert transport.failed_fetches <= 0.6 / 0.01 + 10  # no faster than half the cap (jitter)
    lines = log_lines()
    events = [line["event"] for line in lines]
    assert events.count("event_fetch_failed") == 2  # one per outage
    assert events.count("transport_recovered") == 2
    assert events.count("event_fetch_still_failing") == transport.failed_fetches - 2
    warning = next(line for line in lines if line["event"] == "event_fetch_failed")
    assert (warning["level"], warning["retry_max"]) == ("warning", 0.02)
    recovered = [line for line in lines if line["event"] == "transport_recovered"]
    assert all(line["level"] == "info" for line in recovered)
    assert sum(line["failed_fetches"] for line in recovered) == transport.failed_fetches


async def test_consumers_that_lost_the_broker_together_do_not_retry_together(monkeypatch):
    """After a broker restart, replicas must not all knock again at the same instants."""
    waits = record_waits(monkeypatch, "_fetch_loop", pin_jitter=False)
    transport = _FlakyTransport()
    transport.down = True
    replicas = [EventBus(transport, service_name="svc") for _ in range(2)]
    for bus in replicas:
        bus.subscribe("t.x", EventRecorder(), name="h")
    async with replicas[0], replicas[1]:
        await eventually(lambda: len(waits["_fetch_loop"]) >= 12)
    tried = waits["_fetch_loop"][:12]
    assert len(set(tried)) == len(tried)  # no two waits alike: not in lockstep
    assert all(0 < wait <= _outage._OUTAGE_BACKOFF_MAX for wait in tried)
