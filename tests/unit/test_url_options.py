"""The one parser of URL options the brokers share: typed, strict, and silent about secrets."""

import math
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_core._url_options import URLOptions
from quantum_core.transports.nats.url import parse_nats_url
from quantum_core.transports.rabbitmq.url import split_options as split_amqp
from quantum_core.transports.redis.url import split_options as split_redis

SECRET = "s3cr3t-Pa55"  # noqa: S105 - a made-up password, to look for
NAMES = st.sampled_from(["prefix", "maxlen", "ack_wait", "heartbeat", "name", "storage"])
VALUES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(pairs=st.lists(st.tuples(NAMES, VALUES), unique_by=lambda pair: pair[0]), data=st.data())
def test_each_option_is_read_once_and_the_rest_goes_to_the_client_in_order(pairs, data):
    options = URLOptions(urlencode(pairs), label="test")
    ours = data.draw(st.sets(NAMES))
    for name in ours:
        assert options.text(name) == dict(pairs).get(name)
    assert options.rest() == [(name, value) for name, value in pairs if name not in ours]


@given(minimum=st.integers(-5, 5), number=st.integers(-1000, 1000))
def test_integer_takes_whole_numbers_from_its_minimum(minimum, number):
    options = URLOptions(f"n={number}", label="test")
    if number >= minimum:
        assert options.integer("n", minimum=minimum) == number
    else:
        expected = rf"^test URL option n='{number}' is not valid: expected a whole number >= "
        with pytest.raises(ValueError, match=expected + str(minimum)):
            options.integer("n", minimum=minimum)


@given(seconds=st.floats(allow_nan=True, allow_infinity=True), positive=st.booleans())
def test_seconds_are_finite_and_positive_or_not_negative(seconds, positive):
    options = URLOptions(urlencode([("wait", repr(seconds))]), label="test")
    if math.isfinite(seconds) and (seconds > 0 if positive else seconds >= 0):
        assert options.seconds("wait", positive=positive) == seconds
    else:
        with pytest.raises(ValueError, match=r"is not valid: expected a number of seconds [>]"):
            options.seconds("wait", positive=positive)


@pytest.mark.parametrize("text", ["soon", "1.5.0", "", "1e400"])
def test_seconds_refuse_what_is_not_a_number(text):
    with pytest.raises(ValueError, match=rf"wait='{text}' is not valid: expected a number"):
        URLOptions(f"wait={text}", label="test").seconds("wait")


def test_boolean_and_choice():
    options = URLOptions("a=true&b=0&c=Yes&d=maybe&e=file&f=tape", label="test")
    assert (options.boolean("a"), options.boolean("b"), options.boolean("c")) == (True, False, True)
    with pytest.raises(ValueError, match=r"d='maybe' is not valid: expected true or false"):
        options.boolean("d")
    assert options.choice("e", ("file", "memory")) == "file"
    with pytest.raises(ValueError, match=r"f='tape' is not valid: expected 'file' or 'memory'"):
        options.choice("f", ("file", "memory"))
    assert options.boolean("absent") is None


def test_an_option_given_twice_is_refused_also_under_its_other_name():
    with pytest.raises(ValueError, match=r"^test URL option 'maxlen' is given twice$"):
        URLOptions("maxlen=1&maxlen=2", label="test").integer("maxlen")
    aliased = URLOptions(
        "ack_wait=1&claim_idle=2", label="test", aliases={"claim_idle": "ack_wait"}
    )
    with pytest.raises(ValueError, match=r"'ack_wait' is given twice \(claim_idle is ack_wait\)"):
        aliased.seconds("ack_wait")
    alone = URLOptions("claim_idle=2", label="test", aliases={"claim_idle": "ack_wait"})
    assert alone.seconds("ack_wait") == 2.0
    assert alone.rest() == []


@given(value=VALUES)
def test_an_unknown_option_is_named_with_the_known_ones_and_never_its_value(value):
    options = URLOptions(urlencode([("prefix", "p"), ("password", SECRET + value)]), label="test")
    options.text("prefix")
    with pytest.raises(ValueError, match="unknown") as caught:
        options.rest(client_options=("heartbeat",))
    message = str(caught.value)
    assert message == "unknown test URL option 'password'; known options: heartbeat, prefix"
    assert SECRET not in message


@pytest.mark.parametrize(
    ("split", "url"),
    [
        (split_redis, f"redis://user:{SECRET}@localhost:6379/0?maxlen=lots"),
        (split_amqp, f"amqp://user:{SECRET}@localhost/?dead_letter_max=lots"),
        (split_amqp, f"amqp://user:{SECRET}@localhost/?maxlen=1"),
        (parse_nats_url, f"nats://user:{SECRET}@localhost:4222?maxlen=lots"),
        (parse_nats_url, f"nats://user:{SECRET}@localhost:4222?password={SECRET}"),
    ],
)
def test_every_broker_refuses_a_bad_option_without_echoing_the_url(split, url):
    with pytest.raises(ValueError, match=r"URL option") as caught:
        split(url)
    assert SECRET not in str(caught.value)


def test_every_broker_reads_its_options_and_leaves_the_clients_own():
    assert split_redis("redis://h/0?prefix=p&maxlen=5&max_age=2.5&claim_idle=1&db=3") == (
        "redis://h/0?db=3",
        {"prefix": "p", "maxlen": 5, "max_age": 2.5, "claim_idle": 1.0},
    )
    assert split_amqp("amqp://h/?heartbeat=30&history_max_bytes=0&publish_timeout=2") == (
        "amqp://h/?heartbeat=30",
        {"history_max_bytes": 0, "publish_timeout": 2.0},
    )
    assert parse_nats_url("nats://h:4222?claim_idle=3&storage=memory").options == {
        "ack_wait": 3.0,
        "storage": "memory",
    }
