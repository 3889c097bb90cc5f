"""capture_logs(): a test reads the log lines as the dicts a JSON line holds, nothing printed."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal

import pytest
from pydantic import BaseModel

from quantum_core import configure_logging, get_logger, trace_context
from quantum_core._log_pipeline import RootHandler
from quantum_core._logger import active_config, use_config
from quantum_core.testing import capture_logs

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


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


def our_handlers():
    return [h for h in logging.getLogger().handlers if isinstance(h, RootHandler)]


def test_a_line_is_the_dict_its_json_line_holds_without_time_and_service():
    log = get_logger("execution.orders", domain="execution")
    with capture_logs() as lines:
        log.info("order_placed", symbol="BTCUSDT", quantity=0.5, trace_id=TRACE)
        log.bind(venue="binance").warning("order_%s", "slow", latency_ms=850)
    assert lines == [
        {
            "event": "order_placed",
            "level": "info",
            "logger": "execution.orders",
            "domain": "execution",
            "trace_id": TRACE,
            "symbol": "BTCUSDT",
            "quantity": 0.5,
        },
        {
            "event": "order_slow",
            "level": "warning",
            "logger": "execution.orders",
            "domain": "execution",
            "venue": "binance",
            "latency_ms": 850,
        },
    ]


def test_nothing_reaches_the_configured_stream_while_capturing():
    stream = io.StringIO()
    configure_logging("svc", stream=stream)
    with capture_logs() as lines:
        get_logger("ours").error("captured")
        logging.getLogger("uvicorn.error").error("captured too")
    assert stream.getvalue() == ""
    assert [line["event"] for line in lines] == ["captured", "captured too"]


def test_every_level_is_captured_whatever_the_configured_one():
    configure_logging("svc", "ERROR", stream=io.StringIO())
    log = get_logger("ours")
    with capture_logs() as lines:
        log.debug("d")
        log.info("i")
        logging.getLogger("lib").debug("stdlib d")
    assert [(line["event"], line["level"]) for line in lines] == [
        ("d", "debug"),
        ("i", "info"),
        ("stdlib d", "debug"),
    ]


def test_standard_library_records_are_captured_with_the_same_keys():
    with capture_logs() as lines, trace_context.scope(TRACE):
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]", 42, extra={"domain": "api"}
        )
    assert lines == [
        {
            "event": "Started server process [42]",
            "level": "info",
            "logger": "uvicorn.error",
            "domain": "api",
            "trace_id": TRACE,
        }
    ]


def test_values_are_redacted_and_as_json_holds_them():
    class Fill(BaseModel):
        price: Decimal
        venue: str

    with capture_logs() as lines:
        get_logger("startup").info(
            "connecting",
            dsn="postgresql://trader:hunter2@db:5432/trading",
            api_key="sk-live-abcdef123456",
            fill=Fill(price=Decimal("50000.5"), venue="binance"),
            size=Decimal("0.25"),
        )
    [line] = lines
    assert "hunter2" not in json.dumps(line)
    assert "sk-live-abcdef123456" not in json.dumps(line)
    assert line["fill"] == {"price": "50000.5", "venue": "binance"}
    assert line["size"] == "0.25"


def test_an_exception_is_captured_as_the_json_lines_structured_exception():
    with capture_logs() as lines:
        try:
            raise ValueError("venue rejected token=abc123secret")
        except ValueError:
            get_logger("execution").exception("order_failed", symbol="BTCUSDT")
    [line] = lines
    assert (line["event"], line["level"], line["symbol"]) == ("order_failed", "error", "BTCUSDT")
    [frame] = line["exception"]
    assert frame["exc_type"] == "ValueError"
    assert "abc123secret" not in json.dumps(line)


def test_the_previous_configuration_comes_back_afterwards():
    stream = io.StringIO()
    configure_logging("svc", "WARNING", stream=stream)
    before = (active_config(), our_handlers(), logging.getLogger().level)
    log = get_logger("ours")
    with capture_logs():
        log.warning("captured")
    assert (active_config(), our_handlers(), logging.getLogger().level) == before
    log.warning("written")
    logging.getLogger("lib").warning("written too")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "written",
        "written too",
    ]


def test_the_previous_configuration_comes_back_when_the_block_raises():
    stream = io.StringIO()
    configure_logging("svc", stream=stream)
    before = (active_config(), our_handlers(), logging.getLogger().level)
    with pytest.raises(RuntimeError, match="boom"), capture_logs():
        raise RuntimeError("boom")
    assert (active_config(), our_handlers(), logging.getLogger().level) == before


def test_unconfigured_logging_stays_unconfigured_afterwards(caplog):
    with capture_logs() as lines:
        get_logger("quantum_core.bus").warning("captured")
    assert active_config() is None
    assert our_handlers() == []
    with caplog.at_level(logging.WARNING, logger="quantum_core.bus"):
        get_logger("quantum_core.bus").warning("to the standard library again")
    assert [line["event"] for line in lines] == ["captured"]
    assert [record.getMessage() for record in caplog.records] == ["to the standard library again"]


def test_a_configure_logging_inside_the_block_is_undone_too():
    outer = io.StringIO()
    configure_logging("svc", stream=outer)
    before = (active_config(), our_handlers(), logging.getLogger().level)
    with capture_logs():
        configure_logging("inner", "DEBUG", stream=io.StringIO())
    assert (active_config(), our_handlers(), logging.getLogger().level) == before


def test_captures_nest_each_keeping_its_own_lines():
    log = get_logger("ours")
    with capture_logs() as outer:
        log.info("one")
        with capture_logs() as inner:
            log.info("two")
            logging.getLogger("lib").info("two stdlib")
        log.info("three")
        logging.getLogger("lib").info("three stdlib")
    assert [line["event"] for line in outer] == ["one", "three", "three stdlib"]
    assert [line["event"] for line in inner] == ["two", "two stdlib"]
