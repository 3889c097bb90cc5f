"""``python -m quantum_core.cli``: the same as the ``quantum-core`` console script."""

from ._main import main

raise SystemExit(main())
