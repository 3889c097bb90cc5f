"""The RabbitMQ catalog's records: notes and snapshots merged, anything else skipped."""

import json
from dataclasses import dataclass, field

import pytest

from quantum_core.bus.abilities import GroupSummary, TopicSummary
from quantum_core.transports.rabbitmq import catalog
from quantum_core.transports.rabbitmq.catalog import (
    CatalogReading,
    note_message,
    snapshot_message,
)


@dataclass
class Read:
    """A record as a stream consumer receives it: its body and its offset header."""

    body: bytes
    headers: dict = field(default_factory=dict)


def _read(offset: int, message) -> Read:
    return Read(message.body, {"x-stream-offset": offset})


async def test_notes_and_snapshots_merge_into_topics_groups_and_dead_letters():
    reading = CatalogReading()
    listed = [TopicSummary("a", None, 0, (GroupSummary("svc:h", None, 0),))]
    await reading.take(
        [
            _read(0, note_message("a", None)),
            _read(1, snapshot_message(listed, {"a", "not listed"})),
            _read(2, note_message("b", "svc:h")),
            _read(3, note_message("b", "other:h")),
            _read(4, note_message("c", None, dead=True)),
        ]
    )
    assert reading.noted == {"a": {"svc:h"}, "b": {"svc:h", "other:h"}, "c": set()}
    assert reading.dead == {"a", "c"}


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'"text"', b"{}", b'{"topic": 7}', b'{"snapshot": [1]}'],
)
async def test_what_is_not_a_record_is_skipped(body):
    reading = CatalogReading()
    await reading.take([Read(body, {"x-stream-offset": 0}), _read(1, note_message("a", None))])
    assert reading.noted == {"a": set()}
    assert reading.dead == set()


async def test_a_snapshot_is_due_once_enough_records_came_after_the_last(monkeypatch):
    monkeypatch.setattr(catalog, "SNAPSHOT_AFTER", 10)
    reading = CatalogReading()
    await reading.take([_read(100, note_message("a", None))])
    assert not reading.snapshot_due(110)
    assert reading.snapshot_due(111)
    await reading.take([_read(105, snapshot_message([], set()))])
    assert not reading.snapshot_due(115)
    assert reading.snapshot_due(116)
    assert not reading.snapshot_due(None)  # the marker's offset unknown: never
    assert not CatalogReading().snapshot_due(1000)  # nothing read: nothing to keep


def test_records_are_compact_json_with_the_names_as_given():
    assert json.loads(note_message("orders.eu", "svc:<lambda>").body) == {
        "topic": "orders.eu",
        "group": "svc:<lambda>",
    }
    assert json.loads(note_message("orders", None, dead=True).body) == {
        "topic": "orders",
        "group": None,
        "dead": True,
    }
