"""``pkg.module:obj``: the App a ``run`` or ``asyncapi`` command works on.

``obj`` is an App, a plain EventBus, or a function without arguments returning one of them
(so a module can read its settings when asked, not when imported). The current directory
is importable, as with ``python -m``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys

from ..app import App, as_app
from ._common import CliError, UsageError

__all__ = ["load_app"]


async def load_app(spec: str) -> App:
    """Import ``spec`` and return its App.

    Raises:
        UsageError: ``spec`` is not ``module:attribute``.
        CliError: the import fails, the attribute is missing or is not an App or EventBus.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"expected pkg.module:obj (such as myservice.main:app), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise CliError(f"cannot import {module_name!r}: {type(error).__name__}: {error}") from None
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(f"{module_name!r} has no attribute {attribute!r}") from None
    if inspect.isfunction(target):  # a factory
        try:
            target = target()
            if inspect.isawaitable(target):
                target = await target
        except Exception as error:
            raise CliError(f"{spec}() failed: {type(error).__name__}: {error}") from None
    try:
        return as_app(target)
    except TypeError:
        raise CliError(
            f"{spec} is a {type(target).__name__}; expected an App, an EventBus, or a "
            "function returning one"
        ) from None
