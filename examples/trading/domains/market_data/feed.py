"""A simulated exchange feed: a seeded random walk, so every run sees the same prices."""

import asyncio
import random
from collections.abc import Iterator

from quantum_core import get_event_bus, get_logger, trace_context
from quantum_core.models import MarketDataEvent

logger = get_logger(__name__, domain="market_data")

START_PRICES = {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0}


class MarketDataFeed:
    """Random-walk prices for a few symbols, published as ``market.data.update``."""

    def __init__(self, seed: int = 7, start_prices: dict[str, float] | None = None) -> None:
        self._random = random.Random(seed)
        self._prices = dict(start_prices or START_PRICES)

    def ticks(self, count: int) -> Iterator[MarketDataEvent]:
        """Yield ``count`` ticks, cycling through the symbols."""
        symbols = list(self._prices)
        for number in range(count):
            symbol = symbols[number % len(symbols)]
            price = self._prices[symbol] * (1 + self._random.gauss(0, 0.008))
            self._prices[symbol] = price
            spread = price * 0.0001
            yield MarketDataEvent(
                symbol=symbol,
                price=round(price, 2),
                bid=round(price - spread, 2),
                ask=round(price + spread, 2),
                volume=round(self._random.uniform(0.5, 20), 3),
                source="simulated",
            )

    async def publish(self, tick: MarketDataEvent) -> str:
        """Publish one tick as the start of a new trace."""
        with trace_context.scope() as trace_id:
            logger.debug("market_tick", symbol=tick.symbol, price=tick.price)
            await get_event_bus().publish("market.data.update", tick, trace_id=trace_id)
            return trace_id

    async def run(self, count: int, interval: float = 0.0) -> None:
        """Publish ``count`` ticks, ``interval`` seconds apart."""
        for tick in self.ticks(count):
            await self.publish(tick)
            await asyncio.sleep(interval)
