"""The one batcher: group commit with at most one batch in flight, every item once, in order."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_core._batching import Batcher
from quantum_core.errors import TransportError


class BatchError(Exception):
    """The error of one batch, naming it."""


class ItemError(Exception):
    """The error of one item alone."""


@settings(max_examples=150, deadline=None)
@given(
    callers=st.lists(
        # (items in the call, yields before it, yields before its caller gives up or None)
        st.tuples(st.integers(1, 4), st.integers(0, 3), st.none() | st.integers(0, 4)),
        min_size=1,
        max_size=25,
    ),
    failing_batches=st.sets(st.integers(0, 30)),
    failing_items=st.sets(st.integers(0, 100)),
    send_yields=st.integers(0, 3),
    max_batch=st.integers(1, 6),
)
def test_every_item_goes_at_most_once_in_order_and_each_caller_gets_its_own_batch_s_outcome(
    callers, failing_batches, failing_items, send_yields, max_batch
):
    sent: list[list[int]] = []
    in_flight = 0

    async def send(batch):
        nonlocal in_flight
        in_flight += 1
        assert in_flight == 1  # never two batches at once
        index = len(sent)
        sent.append([item for call in batch for item in call])
        try:
            for _ in range(send_yields):
                await asyncio.sleep(0)
        finally:
            in_flight -= 1
        if index in failing_batches:
            raise BatchError(index)
        if any(call[0] in failing_items for call in batch):
            return [ItemError(call[0]) if call[0] in failing_items else None for call in batch]
        return None

    async def scenario():
        batcher = Batcher(send, max_batch=max_batch, size=len)
        outcomes: dict[int, BaseException | None] = {}

        async def call(items):
            try:
                await batcher.submit(items)
            except (BatchError, ItemError) as exc:
                outcomes[items[0]] = exc
            else:
                outcomes[items[0]] = None

        async def give_up(task, after):
            for _ in range(after):
                await asyncio.sleep(0)
            task.cancel()

        tasks, callers_tasks, next_item = [], [], 0
        for count, pause, cancel_after in callers:
            for _ in range(pause):
                await asyncio.sleep(0)
            items = list(range(next_item, next_item + count))
            calls.append(items)
            next_item += count
            tasks.append(asyncio.create_task(call(items)))
            callers_tasks.append(tasks[-1])
            if cancel_after is not None:
                tasks.append(asyncio.create_task(give_up(tasks[-1], cancel_after)))
        await asyncio.gather(*tasks, return_exceptions=True)
        gave_up = {
            items[0] for items, task in zip(calls, callers_tasks, strict=True) if task.cancelled()
        }
        return outcomes, gave_up

    calls: list[list[int]] = []
    outcomes, gave_up = asyncio.run(scenario())
    went = [item for batch in sent for item in batch]
    assert went == sorted(set(went))  # at most once, in order
    for items in calls:  # a caller that did not give up saw its items go; one that did: all or none
        if items[0] in gave_up:
            assert set(items) <= set(went) or not set(items) & set(went)
        else:
            assert items[0] in outcomes
            assert set(items) <= set(went)
    batch_of = {item: index for index, batch in enumerate(sent) for item in batch}
    for first, outcome in outcomes.items():
        batch = batch_of[first]
        if batch in failing_batches:
            assert isinstance(outcome, BatchError)
            assert outcome.args == (batch,)
        elif first in failing_items:
            assert isinstance(outcome, ItemError)
            assert outcome.args == (first,)
        else:
            assert outcome is None
    for items in calls:  # a caller's items are never split, and batches keep to their size
        assert len({batch_of.get(item) for item in items}) == 1
    caller = {item: index for index, items in enumerate(calls) for item in items}
    assert all(len(batch) <= max_batch or len({caller[i] for i in batch}) == 1 for batch in sent)


async def test_a_lone_caller_sends_at_once_on_its_own_task():
    tasks = []

    async def send(batch):
        tasks.append(asyncio.current_task())

    batcher = Batcher(send)
    await batcher.submit("a")
    assert tasks == [asyncio.current_task()]


async def test_a_caller_cancelled_while_queued_is_not_sent():
    sent, release = [], asyncio.Event()

    async def send(batch):
        sent.append(batch)
        await release.wait()

    batcher = Batcher(send)
    first = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0)
    given_up = asyncio.create_task(batcher.submit("given up"))
    last = asyncio.create_task(batcher.submit("last"))
    await asyncio.sleep(0)
    given_up.cancel()
    release.set()
    await asyncio.gather(first, last)
    assert sent == [["first"], ["last"]]


async def test_each_caller_gets_its_own_item_s_error_when_a_caller_before_it_gave_up():
    release = asyncio.Event()

    async def send(batch):
        await release.wait()
        return [ValueError(item) if item.startswith("bad") else None for item in batch]

    batcher = Batcher(send)
    first = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(batcher.submit(item)) for item in ("a", "gone", "b", "bad")]
    await asyncio.sleep(0)
    queued[1].cancel()
    release.set()
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert results[:2] == [None, None]
    assert isinstance(results[2], asyncio.CancelledError)
    assert results[3] is None
    assert isinstance(results[4], ValueError)
    assert results[4].args == ("bad",)


async def test_added_items_go_without_waiting_and_drain_counts_what_did_not():
    sent, frozen = [], asyncio.Event()

    async def send(batch):
        sent.append(batch)
        if batch[0] == "frozen":
            await frozen.wait()  # never set: a broker that does not answer

    batcher = Batcher(send, max_batch=2)
    for item in ("a", "b", "c"):
        batcher.add(item)
    assert await batcher.drain(1.0) == 0
    assert sent == [["a", "b"], ["c"]]
    batcher.add("frozen")
    batcher.add("queued")
    waiting = asyncio.create_task(batcher.submit("waiting"))
    assert await batcher.drain(0.05) == 3  # the frozen one in flight, two queued behind it
    with pytest.raises(TransportError, match="not sent"):
        await waiting
