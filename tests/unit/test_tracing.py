import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_core import trace_context

W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def test_generate_returns_a_w3c_id_and_makes_it_current():
    trace_id = trace_context.generate()
    assert W3C_TRACE_ID.fullmatch(trace_id)
    assert trace_id != "0" * 32
    assert trace_context.get() == trace_id


def test_generated_ids_are_unique():
    assert len({trace_context.generate() for _ in range(1000)}) == 1000


def test_get_is_none_when_unset_and_after_clear():
    assert trace_context.get() is None
    trace_context.set("abc123")
    trace_context.clear()
    assert trace_context.get() is None


def test_scope_restores_the_previous_id_even_on_error():
    trace_context.set("outer")

    def fail_inside_scope():
        with trace_context.scope("inner") as inner:
            assert inner == "inner"
            assert trace_context.get() == "inner"
            raise KeyError

    with pytest.raises(KeyError):
        fail_inside_scope()
    assert trace_context.get() == "outer"


def test_scope_without_an_id_starts_a_new_trace():
    with trace_context.scope() as trace_id:
        assert W3C_TRACE_ID.fullmatch(trace_id)
        assert trace_context.get() == trace_id
    assert trace_context.get() is None


def test_set_returns_a_token_that_reset_restores():
    trace_context.set("first")
    token = trace_context.set("second")
    trace_context.reset(token)
    assert trace_context.get() == "first"


async def test_concurrent_tasks_never_see_each_others_id():
    seen: dict[str, list[str | None]] = {}

    async def flow(name: str) -> None:
        trace_context.set(name)
        observed = []
        for _ in range(20):
            await asyncio.sleep(0)
            observed.append(trace_context.get())
        seen[name] = observed

    await asyncio.gather(*(flow(f"task-{n}") for n in range(10)))
    for name, observed in seen.items():
        assert observed == [name] * 20
    assert trace_context.get() is None  # nothing leaked into the parent


@pytest.mark.parametrize(
    "bad",
    ["", "a" * 129, "has space", "tab\there", "new\nline", "nul\x00", "é", 123, None, b"abc"],
)
def test_set_rejects_unusable_ids_saying_what_is_accepted(bad):
    with pytest.raises(ValueError, match="visible ASCII") as info:
        trace_context.set(bad)
    assert "at most 128" in str(info.value)
    assert trace_context.get() is None


VISIBLE_ASCII = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@given(st.text(alphabet=VISIBLE_ASCII, min_size=1, max_size=128))
def test_set_accepts_every_visible_ascii_id(trace_id):
    with trace_context.scope(trace_id):
        assert trace_context.get() == trace_id
