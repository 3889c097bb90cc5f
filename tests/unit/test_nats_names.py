"""NATS names: a consumer's description gives its group back, whatever the group's text."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_core.transports.nats.names import Names  # stdlib only: no nats extra needed

NAMES = Names("qc")


@given(topic=st.text(min_size=1), group=st.text(min_size=1))
def test_a_consumers_description_names_its_group(topic, group):
    description = Names.consumer_description(topic, group)
    assert Names.group_of(description, topic) == group


@pytest.mark.parametrize(
    "description",
    [None, "", "a consumer someone else made", "quantum_core group 42 on 'orders'"],
)
def test_a_description_not_ours_names_no_group(description):
    assert Names.group_of(description, "orders") is None


def test_a_subject_of_another_prefix_has_no_topic():
    assert NAMES.topic_of("qc.events.orders.placed") == "orders.placed"
    assert NAMES.topic_of("qc.dead.orders.placed", dead=True) == "orders.placed"
    assert NAMES.topic_of("qc_b.events.orders") is None
    assert NAMES.topic_of("qc.dead.orders") is None  # not an event subject
    assert NAMES.topic_of("qc.events.") is None
