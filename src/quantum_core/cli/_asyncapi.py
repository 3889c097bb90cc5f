"""``quantum-core asyncapi pkg.module:app [--yaml]``: print the service's AsyncAPI 3.0 document.

The document is built by :mod:`quantum_core.asyncapi`; this module only loads the app and
prints it, JSON by default (``--yaml`` needs PyYAML: ``pip install 'quantum-core[yaml]'``).
"""

from __future__ import annotations

import argparse
import sys

from ..asyncapi import asyncapi_document
from ._app_target import load_app
from ._arguments import Commands
from ._common import CliError, Context, Output

__all__ = ["register"]


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    """Add ``asyncapi``."""
    command = commands.add_parser(
        "asyncapi",
        parents=[common],
        help="print a service's AsyncAPI 3.0 document (channels, messages, operations)",
        description=(
            "Print the AsyncAPI 3.0 document of pkg.module:obj (an App, an EventBus, or a "
            "function returning one): a channel per event type, the payloads' JSON Schema, "
            "what the service receives and sends."
        ),
    )
    command.add_argument("app", metavar="pkg.module:obj", help="such as myservice.main:app")
    command.add_argument("--yaml", action="store_true", help="YAML instead of JSON")
    command.set_defaults(handler=print_document)


async def print_document(args: argparse.Namespace, context: Context, output: Output) -> int:
    """Print the document; nothing is started and no broker is contacted."""
    document = asyncapi_document(await load_app(args.app))
    if not args.yaml:
        output.json(document)
        return 0
    try:
        import yaml
    except ImportError:
        raise CliError(
            "--yaml needs PyYAML: pip install 'quantum-core[yaml]' (or leave out --yaml)"
        ) from None
    sys.stdout.write(output.scrubber.text(yaml.safe_dump(document, sort_keys=False)))
    return 0
