"""Executor - order execution domain (the guide's, filling at the signal's price).

Given a fill recorder (``examples/trading/fills.py``: PostgreSQL and the transactional
outbox), each fill is stored and its event written in one transaction, and the outbox's
relay publishes it; without one, the event is published on the bus directly.
"""

import itertools
from typing import Any, Protocol

from quantum_core import TradingLogger, get_event_bus, get_logger, trace_context
from quantum_core.models import OrderEvent, TradeApprovalEvent

logger = get_logger(__name__, domain="execution")


class FillRecorder(Protocol):
    """Stores a fill and writes its event in one transaction; returns the event id."""

    async def record(self, event_type: str, order: dict[str, Any], trace_id: str | None) -> str:
        """Record ``order`` and its ``event_type`` event together."""
        ...


class Executor:
    """Order execution and management (a simulated exchange that fills at once)."""

    def __init__(self, fills: FillRecorder | None = None) -> None:
        self.event_bus = get_event_bus()
        self.fills = fills
        self._order_numbers = itertools.count(1)
        logger.info("Executor initialized")

    async def handle_approved_signal(self, approval: TradeApprovalEvent) -> None:
        """Execute an approved trading signal (validated as a ``TradeApprovalEvent``)."""
        symbol = approval.symbol
        action = approval.action
        trace_id = approval.trace_id or trace_context.get()

        logger.info("approved_signal_received", symbol=symbol, action=action)

        order_id = f"ORD-{next(self._order_numbers):06d}"
        quantity = approval.quantity
        price = approval.entry_price
        if quantity is None or price is None:
            raise ValueError(f"approval of {symbol} without a quantity or an entry price")

        TradingLogger.order_submitted(
            symbol=symbol, order_id=order_id, action=action, quantity=quantity, trace_id=trace_id
        )
        order = OrderEvent(
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            price=price,
            order_type="MARKET",
            status="FILLED",
            filled_quantity=quantity,
            leverage=approval.leverage or 1.0,
            trace_id=trace_id,
        )
        if self.fills is None:
            await self.event_bus.publish("execution.order.filled", order, trace_id=trace_id)
        else:
            await self.fills.record(
                "execution.order.filled", order.model_dump(mode="json"), trace_id
            )
        TradingLogger.order_filled(
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            price=price,
            trace_id=trace_id,
        )
