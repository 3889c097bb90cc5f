"""AI Orchestrator - signal generation domain (the guide's, with a toy momentum model)."""

from quantum_core import TradingLogger, get_event_bus, get_logger, get_policy_store, trace_context
from quantum_core.models import SignalEvent

logger = get_logger(__name__, domain="ai_engine")


def momentum_confidence(change: float) -> float:
    """A stand-in for the ML model: bigger moves give more confident signals."""
    return round(min(0.95, 0.55 + abs(change) * 25), 4)


class AIOrchestrator:
    """AI signal generation orchestrator."""

    def __init__(self) -> None:
        self.event_bus = get_event_bus()
        self.policy_store = get_policy_store()
        self.last_price: dict[str, float] = {}
        self.filtered = 0
        logger.info("AIOrchestrator initialized")

    async def handle_market_update(self, event_data: dict) -> None:
        """Handle a market data update and maybe publish a signal.

        The one handler of the flow that takes the payload dict, as in the guide; the others
        take models (``SignalEvent``, ``TradeApprovalEvent``) validated by the bus.

        Unlike the guide, which starts a new trace here, the tick's own trace goes on: the
        signal, its approval and the order all carry the trace id of the tick that caused them.
        """
        symbol = event_data["symbol"]
        price = event_data["price"]
        trace_id = trace_context.get() or trace_context.generate()

        logger.info("market_data_received", symbol=symbol, price=price)

        previous = self.last_price.get(symbol)
        self.last_price[symbol] = price
        if previous is None:
            return
        change = (price - previous) / previous

        # Get Policy Before Each Decision
        policy = await self.policy_store.get_policy()
        config = policy.get_active_config()

        confidence = momentum_confidence(change)
        if confidence < config.global_min_confidence:
            self.filtered += 1
            logger.info(
                "signal_filtered_low_confidence",
                symbol=symbol,
                confidence=confidence,
                min_required=config.global_min_confidence,
                mode=policy.active_mode.value,
            )
            return

        action = "LONG" if change > 0 else "SHORT"
        direction = 1 if action == "LONG" else -1
        signal = SignalEvent(
            symbol=symbol,
            action=action,
            confidence=confidence,
            entry_price=price,
            tp_price=round(price * (1 + 0.02 * direction), 2),
            sl_price=round(price * (1 - 0.01 * direction), 2),
            trace_id=trace_id,
        )
        await self.event_bus.publish("ai.signal.generated", signal, trace_id=trace_id)
        TradingLogger.signal_generated(
            symbol=symbol, action=action, confidence=confidence, trace_id=trace_id
        )
