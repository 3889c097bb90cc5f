"""The ``quantum-core`` operator command line (GitHub issue 9): streams, dead letters, policy.

Run ``quantum-core --help``; the guide is ``docs/cli.md``. :func:`main` is the entry point,
usable in-process: ``main(["streams", "--json"])`` returns the exit code.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
