"""Examples built on quantum_core."""
