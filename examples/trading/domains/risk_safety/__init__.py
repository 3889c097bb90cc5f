"""Risk and safety: approves or rejects signals against the active risk policy."""
