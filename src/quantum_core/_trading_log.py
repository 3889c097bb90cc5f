"""The fixed trade life-cycle events (:class:`TradingLogger`), re-exported by ``logs``.

Why a module of its own: this is the vocabulary dashboards and alerts rely on, not logging
machinery; it only writes through :func:`quantum_core._logger.get_logger`, on top of the
logger like any other module (``logs`` re-exports it; nothing here imports ``logs``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

from ._logger import Logger, get_logger

Quantity: TypeAlias = float | Decimal
"""A quantity or price: a float, or a Decimal where exactness matters."""


class TradingLogger:
    """The fixed events of a trade's life cycle, so dashboards and alerts can rely on them.

    Each method writes one line on logger ``quantum_core.trading`` with a fixed event name and
    fixed fields, then ``trace_id`` (the current trace if not given) and any ``**extra``;
    ``domain=`` sets the line's domain.

    | event              | level   | fields                                              |
    |--------------------|---------|-----------------------------------------------------|
    | `signal_generated` | info    | symbol, action, confidence                          |
    | `trade_approved`   | info    | symbol, action                                      |
    | `trade_rejected`   | warning | symbol, action, reason                              |
    | `order_submitted`  | info    | symbol, order_id, action, quantity                  |
    | `order_filled`     | info    | symbol, order_id, action, quantity, price           |
    | `order_cancelled`  | info    | symbol, order_id, reason (null when not given)      |
    | `position_opened`  | info    | symbol, side, quantity, entry_price                 |
    | `position_closed`  | info    | symbol, side, quantity, exit_price, pnl_usd         |

    Examples:
        >>> TradingLogger.order_submitted(
        ...     symbol="BTCUSDT", order_id="o-1", action="BUY", quantity=0.5, trace_id=tid
        ... )
    """

    LOGGER_NAME: ClassVar[str] = "quantum_core.trading"
    _loggers: ClassVar[dict[str | None, Logger]] = {}

    @classmethod
    def _logger(cls, domain: str | None) -> Logger:
        logger = cls._loggers.get(domain)
        if logger is None:
            logger = get_logger(cls.LOGGER_NAME, domain)
            if len(cls._loggers) < 64:  # domains are few; never grow without bound
                cls._loggers[domain] = logger
        return logger

    @classmethod
    def signal_generated(
        cls,
        symbol: str,
        action: str,
        confidence: float,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``signal_generated``: a strategy wants to trade."""
        cls._logger(domain).info(
            "signal_generated",
            symbol=symbol,
            action=action,
            confidence=confidence,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def trade_approved(
        cls,
        symbol: str,
        action: str,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``trade_approved``: risk checks passed."""
        cls._logger(domain).info(
            "trade_approved", symbol=symbol, action=action, trace_id=trace_id, **extra
        )

    @classmethod
    def trade_rejected(
        cls,
        symbol: str,
        action: str,
        reason: str,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``trade_rejected`` at WARNING: risk checks refused the trade, and why."""
        cls._logger(domain).warning(
            "trade_rejected",
            symbol=symbol,
            action=action,
            reason=reason,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def order_submitted(
        cls,
        symbol: str,
        order_id: str,
        action: str,
        quantity: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``order_submitted``: the order went to the exchange."""
        cls._logger(domain).info(
            "order_submitted",
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def order_filled(
        cls,
        symbol: str,
        order_id: str,
        action: str,
        quantity: Quantity,
        price: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``order_filled``: the exchange executed the order at ``price``."""
        cls._logger(domain).info(
            "order_filled",
            symbol=symbol,
            order_id=order_id,
            action=action,
            quantity=quantity,
            price=price,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def order_cancelled(
        cls,
        symbol: str,
        order_id: str,
        reason: str | None = None,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``order_cancelled``: the order will not (fully) fill."""
        cls._logger(domain).info(
            "order_cancelled",
            symbol=symbol,
            order_id=order_id,
            reason=reason,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def position_opened(
        cls,
        symbol: str,
        side: str,
        quantity: Quantity,
        entry_price: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``position_opened``."""
        cls._logger(domain).info(
            "position_opened",
            symbol=symbol,
            side=side,
            quantity=quantity,
            entry_price=entry_price,
            trace_id=trace_id,
            **extra,
        )

    @classmethod
    def position_closed(
        cls,
        symbol: str,
        side: str,
        quantity: Quantity,
        exit_price: Quantity,
        pnl_usd: Quantity,
        trace_id: str | None = None,
        *,
        domain: str | None = None,
        **extra: Any,
    ) -> None:
        """Log ``position_closed`` with the realised profit or loss in USD."""
        cls._logger(domain).info(
            "position_closed",
            symbol=symbol,
            side=side,
            quantity=quantity,
            exit_price=exit_price,
            pnl_usd=pnl_usd,
            trace_id=trace_id,
            **extra,
        )
