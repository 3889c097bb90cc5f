"""Execution: turns approved signals into orders."""
