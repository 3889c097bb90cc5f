"""AI engine: turns market data into trade signals."""
