# Verbatim from the design guide (backend/domains/risk_safety/safety_governor.py), imports renamed.
"""Safety Governor - Risk validation domain."""

from quantum_core import get_logger, trace_context
from quantum_core.models import TradeApprovalEvent

logger = get_logger(__name__, domain="risk_safety")


class SafetyGovernor:
    """Risk management and safety checks."""
    
    def __init__(self):
        from quantum_core import get_event_bus, get_policy_store
        
        self.event_bus = get_event_bus()
        self.policy_store = get_policy_store()
        
        logger.info("SafetyGovernor initialized")
    
    async def handle_signal(self, event_data: dict):
        """
        Validate AI signal against risk rules.
        
        Args:
            event_data: Signal from AI engine
        """
        symbol = event_data["symbol"]
        confidence = event_data["confidence"]
        trace_id = event_data.get("trace_id")
        
        # Set trace_id in context
        if trace_id:
            trace_context.set(trace_id)
        
        logger.info(
            "signal_received",
            symbol=symbol,
            confidence=confidence,
            trace_id=trace_id,
        )
        
        # Get current policy
        policy = await self.policy_store.get_policy()
        config = policy.get_active_config()
        
        # Risk validation
        approved = True
        rejection_reason = None
        
        # Check 1: Confidence threshold
        if confidence < config.global_min_confidence:
            approved = False
            rejection_reason = f"Confidence {confidence:.2%} below threshold {config.global_min_confidence:.2%}"
        
        # Check 2: Max positions (simplified - would check actual open positions)
        # ...
        
        # Publish approval/rejection
        approval = TradeApprovalEvent(
            symbol=symbol,
            action=event_data["action"],
            approved=approved,
            rejection_reason=rejection_reason,
            trace_id=trace_id,
        )
        
        event_type = "risk.signal.approved" if approved else "risk.signal.rejected"
        
        await self.event_bus.publish(
            event_type,
            approval.dict(),
            trace_id=trace_id,
        )
        
        if approved:
            logger.info(
                "signal_approved",
                symbol=symbol,
                trace_id=trace_id,
            )
        else:
            logger.warning(
                "signal_rejected",
                symbol=symbol,
                reason=rejection_reason,
                trace_id=trace_id,
            )
