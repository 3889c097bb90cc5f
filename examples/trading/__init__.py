"""The three-domain trading flow: market data -> ai_engine -> risk_safety -> execution."""
