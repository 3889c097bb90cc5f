"""The consumer's and publisher's fast paths keep every guarantee of the slow ones."""

import asyncio
import re
from datetime import UTC, datetime

import pytest

from quantum_core import EventBus, MemoryTransport, current_event
from quantum_core.bus._deadlines import Deadlines
from quantum_core.bus._retry import HandlerTimeoutError, call_handler
from quantum_core.bus.envelope import (
    decode,
    encode_events,
    new_event_id,
    publish_time,
    validate_event_type,
)
from quantum_core.testing import eventually


async def test_acks_of_handlers_that_finish_together_share_calls_and_stop_sends_them():
    transport = MemoryTransport()
    calls: list[int] = []
    bus = EventBus(transport, service_name="svc", concurrency=50, read_count=50)

    async def handle(payload):
        await asyncio.sleep(0)

    bus.subscribe("t.x", handle, name="h")
    await bus.start()
    subscription = bus._consumers[0].subscription
    ack = subscription.ack

    async def counting(deliveries):
        calls.append(len(deliveries))
        await ack(deliveries)

    subscription.ack = counting
    await bus.publish_many("t.x", [{"n": n} for n in range(200)])
    await eventually(lambda: sum(calls) == 200, "the 200 acknowledged")
    assert len(calls) < 200
    await bus.publish_many("t.x", [{"n": n} for n in range(5)])
    await eventually(lambda: bus._consumers[0].counters.handled == 205, interval=0.001)
    await bus.stop()  # returns once what was handled is acknowledged
    assert sum(calls) == 205
    assert transport._topics["t.x"]["svc:h"].pending == {}


async def test_current_event_is_built_when_asked_and_is_the_events_own():
    transport = MemoryTransport()
    seen = []

    async def handle(payload):
        info = current_event()
        assert info is current_event()  # built once per attempt
        seen.append((payload["n"], info.attempt, info.handler, info.type))

    bus = EventBus(transport, service_name="svc")
    bus.subscribe("t.x", handle, name="h")
    async with bus:
        await bus.publish_many("t.x", [{"n": n} for n in range(3)])
        await eventually(lambda: len(seen) == 3, interval=0.001)
    assert sorted(seen) == [(n, 1, "h", "t.x") for n in range(3)]
    assert current_event() is None


async def test_shared_deadlines_cancel_each_late_attempt_and_spare_the_others():
    deadlines = Deadlines()

    async def sleeper(payload):
        await asyncio.sleep(payload["seconds"])

    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(
        *(
            call_handler(sleeper, {"seconds": seconds}, 0.05, deadlines)
            for seconds in (0, 0.01, 1, 1, 0.02)
        )
    )
    elapsed = loop.time() - start
    assert [type(r) for r in results] == [
        type(None),
        type(None),
        HandlerTimeoutError,
        HandlerTimeoutError,
        type(None),
    ]
    assert 0.05 <= elapsed < 0.5
    await asyncio.sleep(0.06)
    assert deadlines._due == {}  # nothing left scheduled


async def test_a_stop_during_an_expiring_attempt_still_cancels_the_task():
    deadlines = Deadlines()
    started = asyncio.Event()

    async def hangs(payload):
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(call_handler(hangs, {}, 0.001, deadlines))
    await started.wait()
    task.cancel()  # stop() cancels the task; the deadline may expire at the same moment
    await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_attempts_in_a_row_share_one_timer_that_is_gone_once_it_fired():
    deadlines = Deadlines()

    async def quick(payload):
        return None

    for _ in range(100):
        assert await call_handler(quick, {}, 0.05, deadlines) is None
    assert 1 <= len(deadlines._due) <= 10  # one per millisecond step, not one per attempt
    await asyncio.sleep(0.1)
    assert deadlines._due == {}  # fired on nobody, and forgotten


def test_publish_time_is_isoformat_in_utc_with_microseconds():
    before = datetime.now(UTC)
    text = publish_time()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before <= parsed <= after


def test_event_ids_of_a_batch_are_unique_time_ordered_hex():
    encoded, ids = encode_events("svc", "t.x", tuple({"n": n} for n in range(500)), None, None)
    assert len(set(ids)) == 500
    assert all(re.fullmatch(r"[0-9a-f]{32}", event_id) for event_id in ids)
    assert [decode(data).id for data in encoded] == ids
    assert ids[0][:12] <= new_event_id()[:12]


@pytest.mark.parametrize("bad", [None, 3, ["t.x"], {"t": 1}, "", "a..b", "a b", "x" * 201])
def test_event_types_are_still_checked_after_good_ones_were_seen(bad):
    assert validate_event_type("t.x") == "t.x"
    assert validate_event_type("t.x") == "t.x"
    with pytest.raises(ValueError, match="invalid event type"):
        validate_event_type(bad)
