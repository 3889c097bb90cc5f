"""Safety Governor - risk validation domain (the guide's, with a positions book)."""

from quantum_core import TradingLogger, get_event_bus, get_logger, get_policy_store, trace_context
from quantum_core.models import SignalEvent, TradeApprovalEvent

logger = get_logger(__name__, domain="risk_safety")

ACCOUNT_EQUITY_USD = 100_000.0


class SafetyGovernor:
    """Risk management and safety checks against the policy in force."""

    def __init__(self) -> None:
        self.event_bus = get_event_bus()
        self.policy_store = get_policy_store()
        self.positions: dict[str, str] = {}  # symbol -> LONG or SHORT
        logger.info("SafetyGovernor initialized")

    async def handle_signal(self, signal: SignalEvent) -> None:
        """Validate an AI signal against the active risk limits, then approve or reject it.

        The bus validates the payload as a ``SignalEvent`` before this runs; one that is not
        is dead-lettered, never half-read here.
        """
        symbol = signal.symbol
        action = signal.action
        confidence = signal.confidence
        entry_price = signal.entry_price
        sl_price = signal.sl_price
        trace_id = signal.trace_id or trace_context.get()

        logger.info("signal_received", symbol=symbol, action=action, confidence=confidence)

        policy = await self.policy_store.get_policy()
        config = policy.get_active_config()

        rejection_reason = None
        held = self.positions.get(symbol)
        if confidence < config.global_min_confidence:
            rejection_reason = (
                f"Confidence {confidence:.2%} below threshold {config.global_min_confidence:.2%}"
            )
        elif held == action:
            rejection_reason = f"Already {held} {symbol}"
        elif held is None and len(self.positions) >= config.max_open_positions:
            rejection_reason = f"Max open positions ({config.max_open_positions}) reached"

        approved = rejection_reason is None
        quantity = None
        if approved:
            stop_distance = abs(entry_price - sl_price) / entry_price if sl_price else 0.01
            notional = min(
                ACCOUNT_EQUITY_USD * config.max_risk_pct_per_trade / stop_distance,
                config.max_position_notional_usd,
            )
            quantity = round(notional / entry_price, 6)
            self.positions[symbol] = action

        approval = TradeApprovalEvent(
            symbol=symbol,
            action=action,
            approved=approved,
            rejection_reason=rejection_reason,
            signal_id=signal.event_id,
            risk_mode=policy.active_mode,
            quantity=quantity,
            leverage=min(config.max_leverage, 5.0) if approved else None,
            entry_price=entry_price,
            tp_price=signal.tp_price,
            sl_price=sl_price,
            trace_id=trace_id,
        )
        event_type = "risk.signal.approved" if approved else "risk.signal.rejected"
        await self.event_bus.publish(event_type, approval, trace_id=trace_id)

        if approved:
            TradingLogger.trade_approved(
                symbol=symbol, action=action, quantity=quantity, trace_id=trace_id
            )
        else:
            TradingLogger.trade_rejected(
                symbol=symbol, action=action, reason=rejection_reason, trace_id=trace_id
            )
