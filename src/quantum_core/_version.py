"""The installed version of quantum_core, and the name it is distributed under."""

__version__ = "0.1.0.dev0"

# The package index name (`pip install quantum-core-sdk`); the import name is quantum_core.
DISTRIBUTION = "quantum-core-sdk"
