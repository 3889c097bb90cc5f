# Verbatim from the design guide (backend/domains/execution/executor.py), imports renamed.
"""Executor - Order execution domain."""

from quantum_core import get_logger, trace_context, TradingLogger
from quantum_core.models import OrderEvent

logger = get_logger(__name__, domain="execution")


class Executor:
    """Order execution and management."""
    
    def __init__(self):
        from quantum_core import get_event_bus
        
        self.event_bus = get_event_bus()
        
        logger.info("Executor initialized")
    
    async def handle_approved_signal(self, event_data: dict):
        """
        Execute approved trading signal.
        
        Args:
            event_data: Approved signal from risk management
        """
        symbol = event_data["symbol"]
        action = event_data["action"]
        trace_id = event_data.get("trace_id")
        
        # Set trace_id
        if trace_id:
            trace_context.set(trace_id)
        
        logger.info(
            "approved_signal_received",
            symbol=symbol,
            action=action,
            trace_id=trace_id,
        )
        
        # Execute order (simplified)
        order_id = "ORD-12345"
        quantity = 1.0
        price = 50000.0
        
        # Use TradingLogger helper
        TradingLogger.order_submitted(
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            trace_id=trace_id,
        )
        
        # Create order event
        order = OrderEvent(
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            price=price,
            order_type="MARKET",
            status="FILLED",
            trace_id=trace_id,
        )
        
        # Publish order filled event
        await self.event_bus.publish(
            "execution.order.filled",
            order.dict(),
            trace_id=trace_id,
        )
