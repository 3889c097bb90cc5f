"""Known secrets, scrubbed from every text the health checker shows or logs.

Why: a health endpoint is public to anything that can reach the port (load balancers,
dashboards, a curious colleague), and dependency errors quote what they were given: a DSN
with its password, a URL with credentials, a key in an exception message. Pattern-based
redaction (:mod:`quantum_core._redaction`) catches the usual shapes (``user:pass@host``,
``password=...``); this module adds the secrets the checker *knows* (API key and secret, the
passwords inside the DSNs and URLs it was given) and replaces them wherever they appear,
whatever the shape of the text around them, also in their URL-quoted and escaped forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote, quote_plus, unquote, urlsplit

from .._redaction import MASK, is_secret_key, redact_text

__all__ = ["Scrubber", "dsn_secrets", "mask_key"]

MIN_SECRET_LENGTH: Final = 4
"""Shorter values cannot be scrubbed without mangling ordinary words; patterns still apply."""

_KEY_VALUE_PASSWORD: Final = re.compile(r"(?i)\bpassword\s*=\s*(?:'([^']*)'|(\S+))")


def mask_key(key: str | None) -> str | None:
    """Return a short masked prefix of an API key, enough to tell keys apart.

    A quarter of the key at most, and never more than 8 characters, is shown:
    ``"AKEY-ab12cd34..."`` (64 characters) becomes ``"AKEY-ab1****"``.
    """
    if not key:
        return None
    return key[: min(8, len(key) // 4)] + "****"


def dsn_secrets(dsn: str | None) -> list[str]:
    """Return the passwords inside a URL or a ``key=value`` DSN (libpq style)."""
    if not dsn:
        return []
    found: list[str] = []
    if "://" in dsn:
        try:
            password = urlsplit(dsn).password
        except ValueError:  # a malformed URL still may hold a password: patterns cover it
            password = None
        if password:
            found += [password, unquote(password)]
    for match in _KEY_VALUE_PASSWORD.finditer(dsn):
        found.append(match.group(1) if match.group(1) is not None else match.group(2))
    return found


class Scrubber:
    """Replace known secrets (and the usual secret patterns) in text and JSON-like values."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, values: Iterable[str | None]) -> None:
        """Never show any of ``values`` (nor their quoted or escaped forms) again."""
        forms = set(self._secrets)
        for value in values:
            if not value or len(value) < MIN_SECRET_LENGTH:
                continue
            for form in (
                value,
                quote(value, safe=""),
                quote_plus(value),
                repr(value)[1:-1],
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
            ):
                if len(form) >= MIN_SECRET_LENGTH:
                    forms.add(form)
        # Longest first: a secret containing another must be masked whole.
        self._secrets = sorted(forms, key=len, reverse=True)

    def text(self, text: str) -> str:
        """Return ``text`` with every known secret and every secret pattern masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_text(text)

    def value(self, value: Any, _depth: int = 0) -> Any:
        """Return a copy of a JSON-like ``value`` with every string scrubbed.

        Values under a secret key (``api_key``, ``password``...) become ``"***"``, as in
        log lines; containers deeper than 16 levels become ``"..."``.
        """
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if _depth >= 16:
            return "..."
        if isinstance(value, Mapping):
            return {
                self.text(str(key)): MASK
                if is_secret_key(key) and item not in (None, "")
                else self.value(item, _depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item, _depth + 1) for item in value]
        return self.text(str(value))
