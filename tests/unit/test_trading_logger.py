from __future__ import annotations

import io
import json
import logging
from decimal import Decimal

import pytest

from quantum_core._log_pipeline import RootHandler
from quantum_core._logger import active_config, use_config
from quantum_core.logs import TradingLogger, configure_logging
from quantum_core.tracing import trace_context

FIXED = ["event", "level", "timestamp", "service", "logger"]

CASES = [
    (
        "signal_generated",
        {"symbol": "BTCUSDT", "action": "BUY", "confidence": 0.87},
        "info",
    ),
    ("trade_approved", {"symbol": "BTCUSDT", "action": "BUY"}, "info"),
    (
        "trade_rejected",
        {"symbol": "BTCUSDT", "action": "BUY", "reason": "max_position_exceeded"},
        "warning",
    ),
    (
        "order_submitted",
        {"symbol": "BTCUSDT", "order_id": "o-1", "action": "BUY", "quantity": 0.5},
        "info",
    ),
    (
        "order_filled",
        {
            "symbol": "BTCUSDT",
            "order_id": "o-1",
            "action": "BUY",
            "quantity": 0.5,
            "price": 64000.5,
        },
        "info",
    ),
    (
        "order_cancelled",
        {"symbol": "BTCUSDT", "order_id": "o-1", "reason": "timeout"},
        "info",
    ),
    (
        "position_opened",
        {"symbol": "BTCUSDT", "side": "long", "quantity": 0.5, "entry_price": 64000.5},
        "info",
    ),
    (
        "position_closed",
        {
            "symbol": "BTCUSDT",
            "side": "long",
            "quantity": 0.5,
            "exit_price": 65000.0,
            "pnl_usd": 499.75,
        },
        "info",
    ),
]


@pytest.fixture(autouse=True)
def _isolated_logging():
    active, root = active_config(), logging.getLogger()
    level = root.level
    use_config(None)
    yield
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
    use_config(active)


@pytest.fixture
def stream():
    stream = io.StringIO()
    configure_logging("execution_service", stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(("event", "fields", "level"), CASES)
def test_each_method_writes_its_event_and_fields(stream, event, fields, level):
    with trace_context.scope("trace-1"):
        getattr(TradingLogger, event)(**fields)
    [line] = _lines(stream)
    assert list(line) == [*FIXED, "trace_id", *fields]
    assert line["event"] == event
    assert line["level"] == level
    assert line["logger"] == "quantum_core.trading"
    assert line["service"] == "execution_service"
    assert line["trace_id"] == "trace-1"
    assert {key: line[key] for key in fields} == fields


@pytest.mark.parametrize(("event", "fields", "_level"), CASES)
def test_domain_trace_id_and_extra_fields(stream, event, fields, _level):
    getattr(TradingLogger, event)(**fields, trace_id="t-2", domain="risk", venue="binance")
    [line] = _lines(stream)
    assert list(line) == [*FIXED, "domain", "trace_id", *fields, "venue"]
    assert (line["domain"], line["trace_id"], line["venue"]) == ("risk", "t-2", "binance")


def test_order_submitted_as_the_guide_calls_it(stream):
    trace_id = trace_context.generate()
    try:
        TradingLogger.order_submitted(
            symbol="ETHUSDT",
            order_id="ord-42",
            action="SELL",
            quantity=1.25,
            trace_id=trace_id,
        )
    finally:
        trace_context.clear()
    [line] = _lines(stream)
    assert line["event"] == "order_submitted"
    assert line["trace_id"] == trace_id
    assert (line["symbol"], line["order_id"], line["action"], line["quantity"]) == (
        "ETHUSDT",
        "ord-42",
        "SELL",
        1.25,
    )


def test_order_cancelled_without_reason_still_has_the_field(stream):
    TradingLogger.order_cancelled("BTCUSDT", "o-9")
    [line] = _lines(stream)
    assert line["reason"] is None
    assert "trace_id" not in line


def test_decimal_quantities_keep_their_digits(stream):
    TradingLogger.order_filled("BTCUSDT", "o-1", "BUY", Decimal("0.10"), Decimal("64000.50"))
    [line] = _lines(stream)
    assert (line["quantity"], line["price"]) == ("0.10", "64000.50")


def test_the_class_docstring_documents_every_event():
    doc = TradingLogger.__doc__ or ""
    for event, fields, level in CASES:
        row = next(row for row in doc.splitlines() if f"`{event}`" in row)
        assert level in row
        for field in fields:
            assert field in row
