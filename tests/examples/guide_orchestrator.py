# Verbatim from the design guide (backend/domains/ai_engine/orchestrator.py), imports renamed.
"""AI Orchestrator - Signal generation domain."""

from quantum_core import EventBus, PolicyStore, get_logger, trace_context
from quantum_core.models import SignalEvent, RiskMode

logger = get_logger(__name__, domain="ai_engine")


class AIOrchestrator:
    """AI signal generation orchestrator."""
    
    def __init__(self):
        from quantum_core import get_event_bus, get_policy_store
        
        self.event_bus = get_event_bus()
        self.policy_store = get_policy_store()
        
        logger.info("AIOrchestrator initialized")
    
    async def handle_market_update(self, event_data: dict):
        """
        Handle market data update and generate signals.
        
        Args:
            event_data: Market data from event
        """
        symbol = event_data["symbol"]
        price = event_data["price"]
        
        # Generate trace_id for this signal flow
        trace_id = trace_context.generate()
        
        logger.info(
            "market_data_received",
            symbol=symbol,
            price=price,
            trace_id=trace_id,
        )
        
        # Get current policy
        policy = await self.policy_store.get_policy()
        config = policy.get_active_config()
        
        # Generate signal (simplified)
        confidence = 0.75  # From ML model
        
        if confidence < config.global_min_confidence:
            logger.debug(
                "signal_filtered_low_confidence",
                symbol=symbol,
                confidence=confidence,
                min_required=config.global_min_confidence,
                trace_id=trace_id,
            )
            return
        
        # Create signal event
        signal = SignalEvent(
            symbol=symbol,
            action="LONG",
            confidence=confidence,
            entry_price=price,
            tp_price=price * 1.02,  # 2% TP
            sl_price=price * 0.99,  # 1% SL
            trace_id=trace_id,
        )
        
        # Publish signal
        await self.event_bus.publish(
            "ai.signal.generated",
            signal.dict(),
            trace_id=trace_id,
        )
        
        logger.info(
            "signal_generated",
            symbol=symbol,
            action="LONG",
            confidence=confidence,
            trace_id=trace_id,
        )
