"""The installed version of quantum_core."""

__version__ = "0.1.0.dev0"
