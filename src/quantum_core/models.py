"""The data a trading backend passes around: risk policy and trading events.

All models are pydantic v2 and immutable, so one cached policy can be shared by every task
without copies. Validation errors name the field that was wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .tracing import new_trace_id

__all__ = [
    "MarketDataEvent",
    "OrderEvent",
    "OrderStatus",
    "OrderType",
    "RiskConfig",
    "RiskMode",
    "RiskPolicy",
    "SignalEvent",
    "TradeAction",
    "TradeApprovalEvent",
    "TradingModel",
    "default_risk_configs",
]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RiskMode(StrEnum):
    """How much risk the desk is willing to take right now."""

    AGGRESSIVE = "AGGRESSIVE"
    NORMAL = "NORMAL"
    DEFENSIVE = "DEFENSIVE"


class TradeAction(StrEnum):
    """The direction of a signal or an order."""

    LONG = "LONG"
    SHORT = "SHORT"
    CLOSE = "CLOSE"


class OrderType(StrEnum):
    """How an order is placed on the exchange."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"


class OrderStatus(StrEnum):
    """Where an order is in its life on the exchange."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class TradingModel(BaseModel):
    """Base of every quantum_core model: frozen, strict about unknown fields.

    ``.dict()`` is kept (the guide calls it) as a warning-free alias of ``model_dump()``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def dict(
        self,
        *,
        include: Any = None,
        exclude: Any = None,
        by_alias: bool = False,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
    ) -> dict[str, Any]:
        """Return the fields as a dict; the same as :meth:`model_dump`."""
        return self.model_dump(
            include=include,
            exclude=exclude,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Symbol = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._:/-]+$")]


class RiskConfig(TradingModel):
    """The limits that apply while one :class:`RiskMode` is active.

    Every limit is a ceiling except ``global_min_confidence``, which is a floor: a stricter
    mode has a higher floor and lower ceilings.
    """

    global_min_confidence: Fraction = Field(
        description="Signals below this model confidence (0-1) are not traded."
    )
    max_leverage: Annotated[float, Field(ge=1.0, le=125.0)] = Field(
        description="Highest leverage an order may use."
    )
    max_risk_pct_per_trade: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="Largest share of equity (0-1) one trade may lose at its stop."
    )
    max_open_positions: Annotated[int, Field(ge=0)] = Field(
        description="Most positions open at the same time."
    )
    max_daily_loss_pct: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="Trading stops for the day after losing this share of equity (0-1)."
    )
    max_position_notional_usd: PositiveFloat = Field(
        description="Largest notional value of one position, in USD."
    )


def default_risk_configs() -> dict[RiskMode, RiskConfig]:
    """Return the default limits of every mode.

    DEFENSIVE is stricter than NORMAL on every limit, and NORMAL stricter than AGGRESSIVE.
    """
    return {
        RiskMode.AGGRESSIVE: RiskConfig(
            global_min_confidence=0.60,
            max_leverage=20.0,
            max_risk_pct_per_trade=0.02,
            max_open_positions=10,
            max_daily_loss_pct=0.08,
            max_position_notional_usd=50_000.0,
        ),
        RiskMode.NORMAL: RiskConfig(
            global_min_confidence=0.70,
            max_leverage=10.0,
            max_risk_pct_per_trade=0.01,
            max_open_positions=5,
            max_daily_loss_pct=0.05,
            max_position_notional_usd=25_000.0,
        ),
        RiskMode.DEFENSIVE: RiskConfig(
            global_min_confidence=0.80,
            max_leverage=3.0,
            max_risk_pct_per_trade=0.005,
            max_open_positions=2,
            max_daily_loss_pct=0.02,
            max_position_notional_usd=5_000.0,
        ),
    }


class RiskPolicy(TradingModel):
    """The risk policy in force: the active mode and the limits of every mode.

    ``version`` goes up by one with every change, so two readers can tell which is newer.
    """

    active_mode: RiskMode = RiskMode.NORMAL
    configs: dict[RiskMode, RiskConfig] = Field(default_factory=default_risk_configs)
    version: Annotated[int, Field(ge=0)] = 0
    updated_by: Annotated[str, Field(min_length=1, max_length=200)] = "system"
    updated_at: datetime = Field(default_factory=_utc_now)

    @model_validator(mode="after")
    def _every_mode_has_limits(self) -> RiskPolicy:
        missing = [mode.value for mode in RiskMode if mode not in self.configs]
        if missing:
            raise ValueError(f"configs is missing limits for mode(s) {', '.join(missing)}")
        return self

    def get_active_config(self) -> RiskConfig:
        """Return the limits of the active mode."""
        return self.configs[self.active_mode]


class _TradingEvent(TradingModel):
    """Fields every trading event carries."""

    event_id: str = Field(default_factory=new_trace_id, min_length=1, max_length=64)
    symbol: Symbol
    timestamp: datetime = Field(default_factory=_utc_now)
    trace_id: str | None = None


class MarketDataEvent(_TradingEvent):
    """A price update for one symbol (the guide's ``market.data.update``)."""

    price: PositiveFloat
    volume: NonNegativeFloat = 0.0
    bid: PositiveFloat | None = None
    ask: PositiveFloat | None = None
    source: str = "exchange"


class SignalEvent(_TradingEvent):
    """A trade idea from the AI engine (``ai.signal.generated``)."""

    action: TradeAction
    confidence: Fraction
    entry_price: PositiveFloat
    tp_price: PositiveFloat | None = None
    sl_price: PositiveFloat | None = None
    strategy: str | None = None


class TradeApprovalEvent(_TradingEvent):
    """Risk's verdict on a signal (``risk.signal.approved`` / ``risk.signal.rejected``)."""

    action: TradeAction
    approved: bool
    rejection_reason: str | None = None
    signal_id: str | None = None
    risk_mode: RiskMode | None = None
    quantity: PositiveFloat | None = None
    leverage: Annotated[float, Field(ge=1.0)] | None = None
    entry_price: PositiveFloat | None = None
    tp_price: PositiveFloat | None = None
    sl_price: PositiveFloat | None = None

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> TradeApprovalEvent:
        if not self.approved and not self.rejection_reason:
            raise ValueError("rejection_reason is required when approved is False")
        return self


class OrderEvent(_TradingEvent):
    """An order sent to the exchange and what became of it (``execution.order.*``)."""

    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    action: TradeAction
    quantity: PositiveFloat
    price: PositiveFloat | None = None
    order_type: OrderType = OrderType.MARKET
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: NonNegativeFloat = 0.0
    leverage: Annotated[float, Field(ge=1.0)] = 1.0
    client_order_id: str | None = None
