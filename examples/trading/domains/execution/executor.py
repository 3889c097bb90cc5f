"""Executor - order execution domain (the guide's, filling at the signal's price)."""

import itertools

from quantum_core import TradingLogger, get_event_bus, get_logger, trace_context
from quantum_core.models import OrderEvent

logger = get_logger(__name__, domain="execution")


class Executor:
    """Order execution and management (a simulated exchange that fills at once)."""

    def __init__(self) -> None:
        self.event_bus = get_event_bus()
        self._order_numbers = itertools.count(1)
        logger.info("Executor initialized")

    async def handle_approved_signal(self, event_data: dict) -> None:
        """Execute an approved trading signal."""
        symbol = event_data["symbol"]
        action = event_data["action"]
        trace_id = event_data.get("trace_id") or trace_context.get()

        logger.info("approved_signal_received", symbol=symbol, action=action)

        order_id = f"ORD-{next(self._order_numbers):06d}"
        quantity = event_data["quantity"]
        price = event_data["entry_price"]

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
            leverage=event_data.get("leverage") or 1.0,
            trace_id=trace_id,
        )
        await self.event_bus.publish("execution.order.filled", order.dict(), trace_id=trace_id)
        TradingLogger.order_filled(
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            price=price,
            trace_id=trace_id,
        )
