from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from quantum_core import logs
from quantum_core._log_pipeline import RootHandler
from quantum_core._logger import active_config, use_config
from quantum_core.logs import Logger, configure_logging, get_logger
from quantum_core.tracing import trace_context

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
VALID_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Capture:
    """A stream to configure logging with, and what was written to it."""

    def __init__(self, binary: bool) -> None:
        self._bytes = io.BytesIO() if binary else None
        self.stream: io.TextIOBase = (
            io.TextIOWrapper(self._bytes, encoding="utf-8") if self._bytes else io.StringIO()
        )

    def text(self) -> str:
        if self._bytes is None:
            assert isinstance(self.stream, io.StringIO)
            return self.stream.getvalue()
        self.stream.flush()
        return self._bytes.getvalue().decode()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text().splitlines()]


@pytest.fixture(autouse=True)
def _isolated_logging():
    """Each test starts unconfigured; our root handler and level never leak out of a test."""
    active, root = active_config(), logging.getLogger()
    level = root.level
    use_config(None)
    yield
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
    use_config(active)


@pytest.fixture(params=["bytes", "text"])
def capture(request):
    return Capture(binary=request.param == "bytes")


def test_the_stream_decides_between_the_bytes_and_the_text_path(capture):
    configure_logging("svc", stream=capture.stream)
    assert active_config().binary is (capture._bytes is not None)


def test_json_line_has_the_fixed_keys_first_then_the_call_fields(capture):
    configure_logging("order_service", stream=capture.stream)
    get_logger("app.orders", domain="execution").info("order placed", symbol="BTC", qty=2)

    [line] = capture.lines()
    assert list(line) == [
        "event", "level", "timestamp", "service", "logger", "domain", "symbol", "qty"
    ]  # fmt: skip
    assert line["event"] == "order placed"
    assert line["level"] == "info"
    assert line["service"] == "order_service"
    assert line["logger"] == "app.orders"
    assert line["domain"] == "execution"
    assert (line["symbol"], line["qty"]) == ("BTC", 2)
    assert TIMESTAMP.fullmatch(line["timestamp"])
    written = datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - written).total_seconds()) < 5


def test_domain_and_trace_id_are_omitted_when_there_are_none(capture):
    configure_logging("svc", stream=capture.stream)
    get_logger("plain").info("hello")
    [line] = capture.lines()
    assert "domain" not in line
    assert "trace_id" not in line


def test_each_method_writes_its_lowercase_level(capture):
    configure_logging("svc", "debug", stream=capture.stream)
    log = get_logger("levels")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.warn("w2")
    log.error("e")
    log.critical("c")
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("x")
    levels = [line["level"] for line in capture.lines()]
    assert levels == ["debug", "info", "warning", "warning", "error", "critical", "error"]


def test_calls_below_the_level_write_nothing(capture):
    configure_logging("svc", "WARNING", stream=capture.stream)
    log = get_logger("quiet")
    log.debug("no")
    log.info("no")
    log.warning("yes")
    assert [line["event"] for line in capture.lines()] == ["yes"]


def test_percent_arguments_are_interpolated(capture):
    configure_logging("svc", stream=capture.stream)
    get_logger("fmt").info("filled %s of %d", "BTC", 3)
    assert capture.lines()[0]["event"] == "filled BTC of 3"


def test_trace_id_comes_from_the_current_trace_unless_given(capture):
    configure_logging("svc", stream=capture.stream)
    log = get_logger("traced", domain="risk")
    with trace_context.scope("abc123"):
        log.info("from context", n=1)
        log.info("explicit", trace_id="explicit-1")
        log.info("explicit none", trace_id=None)
    first, second, third = capture.lines()
    assert list(first)[5:] == ["domain", "trace_id", "n"]
    assert first["trace_id"] == "abc123"
    assert second["trace_id"] == "explicit-1"
    assert third["trace_id"] == "abc123"


async def test_concurrent_tasks_each_log_their_own_trace_id(capture):
    configure_logging("svc", stream=capture.stream)
    log = get_logger("flow")
    stdlib = logging.getLogger("flow.lib")

    async def flow(trace_id: str) -> None:
        with trace_context.scope(trace_id):
            for step in range(3):
                log.info("step", step=step, expected=trace_id)
                stdlib.info("lib step of %s", trace_id)
                await asyncio.sleep(0)

    await asyncio.gather(flow("trace-a"), flow("trace-b"))

    lines = capture.lines()
    assert len(lines) == 12
    for line in lines:
        expected = line.get("expected") or line["event"].rsplit(" ", 1)[1]
        assert line["trace_id"] == expected
    order = [line["trace_id"] for line in lines]
    assert order != sorted(order)  # the tasks really interleaved


def test_bind_adds_fields_without_changing_the_original(capture):
    configure_logging("svc", stream=capture.stream)
    log = get_logger("bound", domain="ai_engine")
    child = log.bind(model="m1").bind(batch=7)
    child.info("scored", score=0.5)
    log.info("plain")
    scored, plain = capture.lines()
    assert list(scored)[4:] == ["logger", "domain", "model", "batch", "score"]
    assert (child.name, child.domain) == ("bound", "ai_engine")
    assert "model" not in plain


def test_stdlib_records_use_the_same_format(capture):
    configure_logging("gateway", stream=capture.stream)
    with trace_context.scope("4bf92f3577b34da6a3ce929d0e0e4736"):
        logging.getLogger("uvicorn.error").warning("x %s", 1)
    logging.getLogger("uvicorn.access").debug("below the root level")
    logging.getLogger("asyncpg").info("extra", extra={"trace_id": "t-9", "domain": "db"})

    warning, extra = capture.lines()
    assert warning == {
        "event": "x 1",
        "level": "warning",
        "timestamp": warning["timestamp"],
        "service": "gateway",
        "logger": "uvicorn.error",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    assert list(warning) == ["event", "level", "timestamp", "service", "logger", "trace_id"]
    assert TIMESTAMP.fullmatch(warning["timestamp"])
    assert (extra["domain"], extra["trace_id"]) == ("db", "t-9")


def test_native_and_stdlib_lines_interleave_in_call_order(capture):
    configure_logging("svc", stream=capture.stream)
    ours, theirs = get_logger("ours"), logging.getLogger("theirs")
    ours.info("1")
    theirs.info("2")
    ours.info("3")
    theirs.info("4")
    assert [line["event"] for line in capture.lines()] == ["1", "2", "3", "4"]


def _fail_with_a_secret_local() -> None:
    db_password = "hunter2-local-only"  # noqa: S105 - the point of the test
    raise ValueError(f"cannot reach the database ({len(db_password)} chars)")


def _assert_structured_exception(line: dict) -> None:
    [exception] = line["exception"]
    assert exception["exc_type"] == "ValueError"
    assert exception["exc_value"] == "cannot reach the database (18 chars)"
    frames = exception["frames"]
    assert frames[-1]["name"] == "_fail_with_a_secret_local"
    assert all(frame.get("locals") is None for frame in frames)


def test_exceptions_are_structured_fields_without_locals(capture):
    configure_logging("svc", stream=capture.stream)
    try:
        _fail_with_a_secret_local()
    except ValueError:
        get_logger("native").exception("query failed", query="q1")
        logging.getLogger("stdlib").exception("query failed")
    logging.getLogger("stdlib").error("not in an except block", exc_info=False)

    native, stdlib, plain = capture.lines()
    _assert_structured_exception(native)
    _assert_structured_exception(stdlib)
    assert native["query"] == "q1"
    assert "exception" not in plain
    assert "hunter2-local-only" not in capture.text()
    assert "Traceback" not in capture.text()  # no text traceback appended by logging


def test_console_mode_writes_readable_lines():
    stream = io.StringIO()
    configure_logging("svc", json_output=False, stream=stream)
    get_logger("app.orders", domain="execution").info("order placed", symbol="BTC", qty=2)
    logging.getLogger("uvicorn.error").warning("x %s", 1)
    try:
        _fail_with_a_secret_local()
    except ValueError:
        get_logger("app.orders").exception("query failed", url="redis://u:pw123456@h")

    text = stream.getvalue()
    first, second = text.splitlines()[:2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)
    assert "order placed" in first
    assert "symbol=BTC" in first
    assert "qty=2" in first
    assert "domain=execution" in first
    assert "[info" in first
    assert "x 1" in second
    assert "[warning" in second
    assert "Traceback (most recent call last)" in text
    assert "ValueError: cannot reach the database" in text
    assert "hunter2-local-only" not in text
    assert "pw123456" not in text
    assert "\x1b[" not in text  # no colours on a stream that is not a terminal


def test_configuring_twice_never_duplicates_and_the_second_call_wins():
    early = get_logger("made.before.configure")  # as at a module's top, before configure
    stdlib = logging.getLogger("lib")
    first, second = io.StringIO(), io.StringIO()

    configure_logging("svc-one", "INFO", stream=first)
    early.info("one")
    stdlib.info("one")
    configure_logging("svc-two", "WARNING", stream=second)
    early.info("dropped: below the second level")
    stdlib.info("dropped: below the second level")
    early.warning("two")
    stdlib.warning("two")

    one = [json.loads(line) for line in first.getvalue().splitlines()]
    two = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [(line["event"], line["service"]) for line in one] == [("one", "svc-one")] * 2
    assert [(line["event"], line["service"]) for line in two] == [("two", "svc-two")] * 2
    ours = [h for h in logging.getLogger().handlers if isinstance(h, RootHandler)]
    assert len(ours) == 1


def test_configuring_twice_on_the_same_stream_writes_each_line_once():
    stream = io.StringIO()
    configure_logging("svc", stream=stream)
    configure_logging("svc", stream=stream)
    get_logger("x").info("native")
    logging.getLogger("y").info("stdlib")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "native",
        "stdlib",
    ]


@pytest.mark.parametrize("level", ["verbose", "", "INFOO", "TRACE", 10, None])
def test_a_bad_level_is_refused_with_the_valid_ones_listed(level):
    with pytest.raises(ValueError, match="log_level") as error:
        configure_logging("svc", level, stream=io.StringIO())
    assert all(name in str(error.value) for name in VALID_LEVELS)


@pytest.mark.parametrize("level", ["debug", "Info", "warning", "warn", " ERROR ", "critical"])
def test_levels_are_case_insensitive(level):
    configure_logging("svc", level, stream=io.StringIO())
    assert logging.getLogger().level == logging.getLevelNamesMapping()[level.strip().upper()]


@pytest.mark.parametrize("service", ["", "   ", None, 42])
def test_a_bad_service_name_is_refused(service):
    with pytest.raises(ValueError, match="service_name"):
        configure_logging(service, stream=io.StringIO())


def test_before_configure_nothing_is_printed_and_stdlib_handlers_are_untouched(capsys):
    handlers = list(logging.getLogger().handlers)
    get_logger("early", domain="ai_engine").warning("before configure", n=1)
    assert capsys.readouterr().out == ""  # it went to stdlib logging (see the other file)
    assert logging.getLogger().handlers == handlers


def test_the_stream_defaults_to_sys_stdout_at_call_time(capsys):
    configure_logging("svc")
    get_logger("x").info("to stdout")
    logging.getLogger("y").warning("to stdout too")
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["to stdout", "to stdout too"]


class _Opaque:
    def __str__(self) -> str:
        return "opaque redis://app:s3cr3tvalue@cache"


class _Broken:
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_odd_values_never_break_a_line(capture):
    configure_logging("svc", stream=capture.stream)
    cyclic: dict = {}
    cyclic["self"] = cyclic
    get_logger("odd").info(
        "odd values",
        opaque=_Opaque(),
        broken=_Broken(),
        raw=b"\xff\xfe",
        nan=float("nan"),
        amount=Decimal("0.50"),
        when=datetime(2025, 12, 1, 12, tzinfo=UTC),
        tags={"a"},
        cyclic=cyclic,
    )
    [line] = capture.lines()
    assert line["opaque"] == "opaque redis://app:***@cache"
    assert line["broken"] == "<unprintable _Broken>"
    assert line["raw"] == "\\xff\\xfe"
    assert line["nan"] == "NaN"
    assert line["amount"] == "0.50"
    assert line["when"].startswith("2025-12-01T12:00:00")
    assert line["tags"] == ["a"]


def test_a_line_json_cannot_encode_degrades_to_text_values(capture):
    configure_logging("svc", stream=capture.stream)
    get_logger("odd").info("lone surrogate", text="\ud800", n=1, url="redis://:pw123456@h")
    [line] = capture.lines()
    assert (line["event"], line["text"], line["n"]) == ("lone surrogate", "\ud800", "1")
    assert line["url"] == "redis://:***@h"


def test_a_failing_stream_never_raises_into_the_caller(capsys):
    stream = io.StringIO()
    configure_logging("svc", stream=stream)
    stream.close()
    get_logger("x").info("lost")  # must not raise
    assert "quantum_core logging error" in capsys.readouterr().err


def test_get_logger_names_the_calling_module_by_default():
    log = get_logger()
    assert isinstance(log, Logger)
    assert log.name == __name__
    assert log.domain is None


@pytest.mark.parametrize(("name", "domain"), [("", None), (3, None), ("x", ""), ("x", 5)])
def test_get_logger_refuses_bad_names(name, domain):
    with pytest.raises(ValueError, match="expected a non-empty string"):
        get_logger(name, domain)


def test_public_names():
    assert sorted(logs.__all__) == ["Logger", "TradingLogger", "configure_logging", "get_logger"]


def test_sys_stdout_none_is_an_explained_error(monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(ValueError, match="pass stream="):
        configure_logging("svc")


class _Counted:
    """Counts how often a line tried to render it."""

    def __init__(self) -> None:
        self.renders = 0

    def __str__(self) -> str:
        self.renders += 1
        return "counted"


def test_calls_below_the_level_never_look_at_their_fields(capture):
    configure_logging("svc", "ERROR", stream=capture.stream)
    log = get_logger("quiet")
    value = _Counted()
    log.debug("no %s", value, value=value)
    log.info("no", value=value)
    log.warning("no", value=value)
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("yes", value=value)
    assert value.renders == 1
    assert [line["event"] for line in capture.lines()] == ["yes"]
    configure_logging("svc", "CRITICAL", stream=capture.stream)
    log.exception("no", value=value)
    assert value.renders == 1


def test_bound_fields_come_first_and_the_call_wins(capture):
    configure_logging("svc", stream=capture.stream)
    log = get_logger("bound").bind(event="bound event", a=1, b=2, trace_id="bound-trace")
    with trace_context.scope("current-trace"):
        log.info("call event", b=3, c=4)
        log.info("own trace", trace_id="call-trace")
    first, second = capture.lines()
    assert first["event"] == "call event"
    assert first["trace_id"] == "bound-trace"
    assert list(first)[5:] == ["trace_id", "a", "b", "c"]
    assert (first["a"], first["b"], first["c"]) == (1, 3, 4)
    assert second["trace_id"] == "call-trace"


def test_secrets_in_bound_fields_and_the_event_are_masked_on_every_line(capture):
    configure_logging("svc", stream=capture.stream)
    log = get_logger("bound").bind(api_key="k-hunter2", dsn="redis://u:hunter2@h")
    for _ in range(3):  # later lines take the cached paths
        log.info("auth with password=%s", "hunter2", trace_id="token=hunter2")
    assert "hunter2" not in capture.text()
    assert len(capture.lines()) == 3


def test_lines_from_many_threads_never_mix(capture):
    configure_logging("svc", stream=capture.stream)
    log = get_logger("threads")

    def write(worker: int) -> None:
        for n in range(200):
            log.info("tick", worker=worker, n=n, pad="x" * 500)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = capture.lines()  # each one parses: no line was cut by another
    assert sorted((line["worker"], line["n"]) for line in lines) == [
        (worker, n) for worker in range(8) for n in range(200)
    ]


def test_stack_info_starts_at_the_caller(capture):
    configure_logging("svc", stream=capture.stream)
    get_logger("stack").info("where", stack_info=True)
    [line] = capture.lines()
    assert "test_stack_info_starts_at_the_caller" in line["stack"]
    assert "_log_pipeline" not in line["stack"]
    assert "stack_info" not in line
