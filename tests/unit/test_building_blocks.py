"""The shared building blocks every part of the library uses: backoff and input checks."""

import math
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_core import RedisPolicyBackend
from quantum_core._backoff import backoff
from quantum_core._checks import check_choice, check_int, check_name, check_seconds, check_text
from quantum_core._redis import JitteredBackoff
from quantum_core.transports.redis import RedisStreamsTransport


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    first=st.floats(min_value=0.001, max_value=10),
    most=st.floats(min_value=0.001, max_value=600),
)
def test_backoff_doubles_up_to_its_cap_and_jitters_within_half(failures, first, most):
    nominal = min(most, first * 2.0 ** min(failures - 1, 60))
    assert backoff(failures, first, most, jitter=False) == nominal
    waited = backoff(failures, first, most)
    assert nominal * 0.5 <= waited <= nominal


def test_replicas_that_failed_together_do_not_retry_together():
    waits = {backoff(3, 0.1, 5.0) for _ in range(50)}
    assert len(waits) > 40


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_check_int_refuses_what_is_not_a_whole_number_from_1(value):
    with pytest.raises(ValueError, match=rf"limit must be a whole number >= 1, got {value!r}"):
        check_int("limit", value)


@pytest.mark.parametrize("value", [-0.1, True, "1", math.nan, math.inf, None])
def test_check_seconds_refuses_what_is_not_a_finite_number_of_seconds(value):
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0"):
        check_seconds("timeout", value)


def test_check_seconds_takes_infinity_only_where_allowed_and_zero_only_where_not_positive():
    assert check_seconds("timeout", math.inf, positive=True, allow_infinite=True) == math.inf
    assert check_seconds("timeout", 0) == 0.0
    with pytest.raises(ValueError, match=r"> 0"):
        check_seconds("timeout", 0, positive=True)


@pytest.mark.parametrize("value", ["", "has space", "tab\there", "x" * 101, 5, None, "\x00"])
def test_check_name_refuses_empty_spaced_unprintable_or_long_names(value):
    with pytest.raises(ValueError, match=r"name must be a non-empty string of at most 100"):
        check_name("name", value)


@given(number=st.integers(-5, 20), minimum=st.integers(-2, 5), maximum=st.integers(5, 15))
def test_check_int_takes_whole_numbers_within_its_bounds(number, minimum, maximum):
    if minimum <= number <= maximum:
        assert check_int("n", number, minimum=minimum, maximum=maximum) == number
    else:
        bound = f"a whole number >= {minimum}" if number < minimum else f"at most {maximum}"
        with pytest.raises(ValueError, match=rf"^n must be {bound}, got {number}$"):
            check_int("n", number, minimum=minimum, maximum=maximum)


def test_check_seconds_at_most():
    assert check_seconds("t", 300, positive=True, maximum=300) == 300.0
    with pytest.raises(ValueError, match=r"^t must be at most 300 seconds, got 301$"):
        check_seconds("t", 301, positive=True, maximum=300)


def test_check_text_and_check_choice_say_what_was_expected():
    word = re.compile(r"[a-z]+")
    assert check_text("w", "abc", pattern=word, expected="letters") == "abc"
    for value in ("ab1", "", 5, None):
        with pytest.raises(ValueError, match=rf"^w must be letters, got {re.escape(repr(value))}$"):
            check_text("w", value, pattern=word, expected="letters")
    with pytest.raises(ValueError, match="at most 4 bytes"):
        check_text("w", "ééé", max_bytes=4, expected="at most 4 bytes")
    assert check_choice("storage", "file", ("file", "memory")) == "file"
    with pytest.raises(ValueError, match=r"^storage must be 'file' or 'memory', got 'tape'$"):
        check_choice("storage", "tape", ("file", "memory"))


def test_redis_py_retries_wait_with_the_shared_jittered_backoff(monkeypatch):
    transport = RedisStreamsTransport("redis://127.0.0.1:6379/0")  # nothing connects
    policy = RedisPolicyBackend("redis://127.0.0.1:6379/0")
    for client in (transport._state.commands, policy.new_client()):
        waits = client.get_retry()._backoff
        assert isinstance(waits, JitteredBackoff)
        assert len({waits.compute(3) for _ in range(20)}) > 15  # no two clients in lockstep
        monkeypatch.setattr(random, "uniform", lambda low, high: low)
        assert [waits.compute(n) for n in (1, 2, 3)] == [
            backoff(n, waits.first, waits.most) for n in (1, 2, 3)
        ]
        monkeypatch.undo()
