"""Before ``configure_logging``, quantum_core logs like a library: through stdlib ``logging``.

A script that never configures logging must see only its own output; one that sets up the
standard library (``logging.basicConfig``) gets our lines through its handlers, under the
``quantum_core.*`` loggers, with our fields in the message and on the record.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from quantum_core import TradingLogger
from quantum_core._log_pipeline import RootHandler
from quantum_core._logger import active_config, use_config
from quantum_core.logs import configure_logging, get_logger
from quantum_core.tracing import trace_context

# A script using the bus and the policy store, which log at INFO on start and stop.
SCRIPT = """
import asyncio
{setup}
from quantum_core import EventBus, PolicyStore, TradingLogger, get_logger

async def main():
    handled = asyncio.Event()

    async def on_order(payload):
        get_logger("app.orders", domain="execution").info("order_seen", symbol="BTC")
        handled.set()

    bus = EventBus("memory://", service_name="svc")
    bus.subscribe("orders.placed", on_order)
    store = PolicyStore()
    await store.initialize()
    async with bus:
        await bus.publish("orders.placed", {{"symbol": "BTC"}})
        await asyncio.wait_for(handled.wait(), 10)
    TradingLogger.trade_approved("BTC", "BUY")
    print("own output")

asyncio.run(main())
"""


def _run(setup: str = "") -> subprocess.CompletedProcess[str]:
    code = SCRIPT.format(setup=textwrap.dedent(setup))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )


def test_a_script_that_never_configures_logging_prints_only_its_own_output():
    result = _run()
    assert result.stdout == "own output\n"
    assert result.stderr == ""


def test_basic_config_shows_our_lines_through_its_handler_with_their_fields():
    result = _run(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        """
    )
    assert result.stdout == "own output\n"
    lines = result.stderr.splitlines()
    [started] = [line for line in lines if "event_bus_started" in line]
    assert started.startswith("INFO quantum_core.bus event_bus_started bus_service=svc consumer=")
    assert started.endswith(' subscriptions=["orders.placed -> __main__.main.<locals>.on_order"]')
    assert any(line.startswith("INFO quantum_core.policy policy_") for line in lines)
    assert any(line.startswith("INFO app.orders order_seen symbol=BTC trace_id=") for line in lines)
    assert "INFO quantum_core.trading trade_approved symbol=BTC action=BUY" in lines
    assert not any(line.lstrip().startswith("{") for line in lines)  # no JSON of ours


def test_configure_logging_takes_over_from_the_standard_library():
    result = _run(
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, format="stdlib %(message)s")
        from quantum_core import configure_logging
        configure_logging("svc", stream=sys.stderr)
        """
    )
    assert result.stdout == "own output\n"
    ours = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert "event_bus_started" in [line["event"] for line in ours]
    assert not [line for line in result.stderr.splitlines() if "stdlib event_bus" in line]


# -- in this process --------------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _unconfigured():
    """Each test starts before any configure_logging; the root logger is left as it was."""
    active, root = active_config(), logging.getLogger()
    level = root.level
    use_config(None)
    yield
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
    use_config(active)


@pytest.fixture
def records():
    """Records reaching the root logger's handlers, with the root at DEBUG for the test."""
    root = logging.getLogger()
    handler, level = Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_line_is_a_stdlib_record_with_its_fields_as_attributes(records):
    with trace_context.scope("trace-1"):
        get_logger("quantum_core.bus", domain="execution").warning(
            "order %s placed", "o-1", symbol="BTC", qty=2, tags=["a"]
        )
    [record] = records
    assert (record.name, record.levelno) == ("quantum_core.bus", logging.WARNING)
    assert record.getMessage() == 'order o-1 placed symbol=BTC qty=2 tags=["a"] trace_id=trace-1'
    assert (record.symbol, record.qty, record.tags) == ("BTC", 2, ["a"])
    assert (record.trace_id, record.domain, record.event) == (
        "trace-1",
        "execution",
        "order o-1 placed",
    )
    assert record.filename == "test_logs_before_configure.py"
    assert record.funcName == "test_a_line_is_a_stdlib_record_with_its_fields_as_attributes"


def test_fields_named_like_record_attributes_stay_in_the_message(records):
    get_logger("x").info("clash", name="n", msg="m", message="text with spaces")
    [record] = records
    assert record.name == "x"
    assert record.getMessage() == 'clash name=n msg=m message="text with spaces"'


def test_the_standard_library_decides_the_level(records):
    logging.getLogger("quantum_core.quiet").setLevel(logging.WARNING)
    try:
        log = get_logger("quantum_core.quiet")
        log.debug("no")
        log.info("no")
        log.error("yes")
        logging.getLogger("quantum_core.quiet").setLevel(logging.DEBUG)
        log.debug("yes too")  # a level change applies at once
    finally:
        logging.getLogger("quantum_core.quiet").setLevel(logging.NOTSET)
    assert [r.getMessage() for r in records] == ["yes", "yes too"]


def test_secrets_are_masked_in_the_message_and_the_attributes(records):
    get_logger("x").bind(api_key="sk-live-abcdef").info(
        "connecting password=%s", "hunter2", dsn="redis://u:hunter2@h"
    )
    [record] = records
    text = record.getMessage() + repr(vars(record))
    assert "hunter2" not in text
    assert "sk-live-abcdef" not in text
    assert record.dsn == "redis://u:***@h"


def test_exceptions_and_stacks_are_the_handler_s_to_format(records):
    log = get_logger("x")
    try:
        raise KeyError("boom")
    except KeyError:
        log.exception("failed", n=1)
    log.info("where", stack_info=True)
    failed, where = records
    assert failed.levelno == logging.ERROR
    assert failed.exc_info[0] is KeyError
    assert failed.getMessage() == "failed n=1"
    assert "test_exceptions_and_stacks_are_the_handler_s_to_format" in where.stack_info
    assert "_log_pipeline" not in where.stack_info
    assert where.getMessage() == "where"


def test_trading_events_point_at_their_caller(records):
    TradingLogger.trade_rejected("BTC", "BUY", "limit", domain="risk")
    [record] = records
    assert (record.name, record.levelno, record.domain) == (
        "quantum_core.trading",
        logging.WARNING,
        "risk",
    )
    assert record.getMessage() == "trade_rejected symbol=BTC action=BUY reason=limit"
    assert record.funcName == "test_trading_events_point_at_their_caller"


def test_nothing_goes_to_stdout_before_configure(capsys):
    get_logger("quantum_core.bus").info("unseen")
    get_logger("app").info("unseen too")
    assert capsys.readouterr().out == ""


def test_after_configure_our_lines_no_longer_go_through_the_standard_library(records):
    stream = io.StringIO()
    configure_logging("svc", stream=stream)
    get_logger("quantum_core.bus").info("fast path")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["fast path"]
    assert [r.getMessage() for r in records] == []
