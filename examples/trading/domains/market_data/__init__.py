"""Market data: a simulated exchange feed."""
