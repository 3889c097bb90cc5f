"""Griffe extension: render Sphinx roles in docstrings (``:class:`EventBus```) as code.

The docstrings are Google style but name other objects with Sphinx roles; mkdocstrings
would print the role verbatim. Each role becomes an inline code span: the name stays
readable, and no cross-reference that might not resolve can fail the strict build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|attr|exc|mod|obj|const):`~?\.?([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Replace ``:role:`target``` with ```target``` in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the roles of ``obj``'s docstring, once griffe has loaded it."""
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
