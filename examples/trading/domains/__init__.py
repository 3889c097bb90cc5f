"""Domain code: written against quantum_core only, never a transport or broker library."""
