"""Contract check of ``list_topics()``: what ``quantum-core topics`` shows an operator.

The operator asks which event types exist, which groups consume them, how far behind each
is and how many dead letters wait: the same answer on every broker, with None (``-``) only
where the broker cannot tell.
"""

from __future__ import annotations

from typing import Any

from ..bus.abilities import TopicSummary, topic_lister
from .harness import PATIENCE, Check, Harness, TransportFeatures, expect
from .waiting import eventually

__all__ = ["LISTING_CHECKS"]


def _is(value: int | None, expected: int) -> bool:
    return value is None or value == expected


async def _topics_listed(h: Harness, features: TransportFeatures) -> None:
    """Every topic of the namespace, sorted, with its groups, backlog and dead letters."""
    if not features.lists_topics:
        return
    lister = topic_lister(h.transport())
    consumed, unread = h.topic("consumed"), h.topic("unread")

    async def handle(payload: dict[str, Any]) -> None:
        if payload["n"] == 0:
            raise ValueError("set aside")

    bus = h.bus("lister", max_attempts=1)
    bus.subscribe(consumed, handle, name="handle")
    await bus.start()
    publisher = h.bus("publisher")
    await publisher.publish_many(consumed, [{"n": n} for n in range(3)])
    await publisher.publish(unread, {"n": 0})
    group = f"{bus.service_name}:handle"
    seen: list[TopicSummary] = []

    async def listed() -> bool:
        seen[:] = await lister.list_topics()
        topics = {topic.event_type: topic for topic in seen}
        if not {consumed, unread} <= set(topics):  # other checks' topics may share the namespace
            return False
        busy, quiet = topics[consumed], topics[unread]
        return (
            [g.name for g in busy.groups] == [group]
            and _is(busy.groups[0].pending, 0)
            and _is(busy.groups[0].lag, 0)
            and _is(busy.dead_letters, 1)
            and _is(busy.length, 3)
            and quiet.groups == ()
            and _is(quiet.dead_letters, 0)
            and _is(quiet.length, 1)
        )

    try:
        await eventually(listed, "both topics listed", timeout=PATIENCE, interval=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}; the one handled with no backlog; listed: {seen}") from None
    expect([t.event_type for t in seen] == sorted(t.event_type for t in seen), seen)


LISTING_CHECKS: dict[str, Check] = {"topics_listed": _topics_listed}
"""The listing check by name, merged into ``quantum_core.testing.CHECKS``."""
