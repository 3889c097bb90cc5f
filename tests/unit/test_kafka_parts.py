"""The Kafka transport's pure parts: URL options, names, and the commit point of a partition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_core.transports.kafka.names import PREFIX_PATTERN, Names
from quantum_core.transports.kafka.offsets import PartitionOffsets
from quantum_core.transports.kafka.url import parse_kafka_url


def test_a_url_gives_servers_and_options():
    parsed = parse_kafka_url(
        "kafka://k1:9092,k2:9093?prefix=trading&partitions=6&session_timeout=6.5"
    )
    assert parsed.servers == ["k1:9092", "k2:9093"]
    assert parsed.options == {"prefix": "trading", "partitions": 6, "session_timeout": 6.5}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://", "needs a server"),
        ("kafka://host", "must be host:port"),
        ("kafka://h:1?nope=1", "unknown kafka:// URL option 'nope'"),
        ("kafka://h:1?partitions=0", "partitions='0' is not valid: expected a whole number"),
        ("kafka://h:1?session_timeout=-1", "session_timeout='-1' is not valid"),
        ("kafka://h:1?prefix=a&prefix=b", "given twice"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        parse_kafka_url(url)


def test_credentials_in_a_url_are_refused_without_echoing_them():
    with pytest.raises(ValueError, match="not supported") as caught:
        parse_kafka_url("kafka://user:s3cret@host:9092")
    assert "s3cret" not in str(caught.value)


@given(st.text(max_size=60))
def test_parsing_any_text_raises_only_value_error(text):
    message = "kafka"
    try:
        parse_kafka_url(f"kafka://{text}")
    except ValueError as exc:
        message = str(exc)
    assert "kafka" in message


def test_names_of_a_prefix():
    names = Names("qc")
    assert names.topic("market.data") == "qc.events.market.data"
    assert names.dead_topic("market.data") == "qc.dead.market.data"
    assert names.group_id("market.data", "risk:on_tick") == "qc:risk:on_tick:market.data"
    with pytest.raises(ValueError, match="not valid"):
        names.topic("x" * 250)


PREFIXES = st.from_regex(PREFIX_PATTERN, fullmatch=True)
EVENT_TYPES = st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True)
GROUPS = st.from_regex(r"[A-Za-z0-9._-]{1,20}:[A-Za-z0-9._:-]{1,20}", fullmatch=True)


@given(mine=PREFIXES, other=PREFIXES, event_type=EVENT_TYPES, group=GROUPS)
def test_names_read_back_only_by_their_own_prefix(mine, other, event_type, group):
    """What ``list_topics`` parses: ``a`` never claims ``a_b``'s names, nor the other way."""
    names, theirs = Names(mine), Names(other)
    topic, dead = theirs.topic(event_type), theirs.dead_topic(event_type)
    group_id = theirs.group_id(event_type, group)
    assert theirs.events_of(topic) == event_type
    assert theirs.dead_of(topic) is None
    assert theirs.dead_of(dead) == event_type
    assert theirs.events_of(dead) is None
    assert theirs.group_of(group_id) == (event_type, group)
    if mine != other:
        assert names.events_of(topic) is None
        assert names.dead_of(topic) is None
        assert names.events_of(dead) is None
        assert names.dead_of(dead) is None
        assert names.group_of(group_id) is None


def test_names_of_nothing_are_not_read_as_a_topic_or_group():
    names = Names("qc")
    for name in ("qc.events.", "qc.dead.", "qc", "qc_b.events.x", "other.events.x"):
        assert names.events_of(name) is None
        assert names.dead_of(name) is None
    for group_id in ("qc:", "qc:svc", "qc:svc:", "qc::x", "qc_b:svc:h:x"):
        assert names.group_of(group_id) is None


@given(
    count=st.integers(min_value=1, max_value=40),
    order=st.randoms(use_true_random=False),
    start=st.integers(min_value=0, max_value=10**6),
)
def test_the_commit_point_never_passes_a_record_in_flight(count, order, start):
    """Finished in any order, the position is always the lowest offset not finished."""
    offsets = PartitionOffsets(start)
    fetched = list(range(start, start + count))
    for offset in fetched:
        offsets.fetched(offset)
    finishing = fetched[:]
    order.shuffle(finishing)
    done: set[int] = set()
    for offset in finishing:
        offsets.finished(offset)
        done.add(offset)
        lowest_open = min((o for o in fetched if o not in done), default=start + count)
        assert offsets.position == lowest_open
        assert offsets.in_flight == count - len(done)
    offsets.finished(fetched[0])  # an ack sent twice changes nothing
    assert offsets.position == start + count
    assert offsets.unfinished() == []
