"""Mask secrets before text leaves the process: log lines, health reports, error messages.

Why: a trading backend holds broker credentials, database DSNs and API tokens, and they end
up in log lines by accident (``log.info("connecting", url=settings.redis_url)``, an asyncpg
error quoting the DSN, a request header dumped while debugging). Logs are shipped to places
with weaker access control than the secrets, so redaction is on by default and runs on every
line; it is therefore written to be cheap when there is nothing to hide: keys, and short texts
found harmless, are remembered (bounded caches; :func:`redact_text` is a pure function), so a
line of familiar keys, symbols and event names costs a few lookups.

Rules:

* **Keys.** :func:`is_secret_key` normalises a key (camelCase and ``-``/``.``/space become
  ``_``-separated lowercase words) and calls it secret when it contains ``password``,
  ``passwd``, ``passphrase``, ``secret``, ``credential``, ``authorization``, ``cookie``,
  ``token`` (but not the plural ``tokens``, which counts LLM tokens), ``api_key``,
  ``private_key``, ``access_key``, ``signing_key`` or ``encryption_key`` (with or without
  the ``_``), or has a whole word ``pwd``, ``pass``, ``auth``, ``jwt`` or ``bearer`` (so
  ``author`` and ``passenger`` stay). A key whose last word describes the secret instead of
  holding it (``token_count``, ``auth_type``, ``secret_name``, ``access_key_id``,
  ``auth_url``; see ``_DESCRIBES_A_SECRET``) is not secret. The value of a secret key
  becomes ``"***"`` whatever its type, except ``None`` and ``""`` (seeing that a password is
  missing helps; it reveals nothing). ``dsn`` and ``url`` are not secret keys: their
  password is masked by the text rules below and the host stays readable.
* **Text.** :func:`redact_text` masks, in any string: the password of a URL
  (``redis://user:pass@host`` -> ``redis://user:***@host``; the user part stays), a bearer
  token (``Bearer abc`` -> ``Bearer ***``), and ``key=value`` / ``key: value`` pairs (also
  quoted, as in a ``repr`` or JSON) whose key ends in password, passwd, pwd, secret, token,
  api_key, access_key or private_key.
* **Structures.** :func:`redact` walks dicts, lists, tuples and sets (bytes are decoded so
  their text can be checked); other objects are returned unchanged. Containers nested
  deeper than 32 levels (or cyclic ones) are cut to ``"..."``: what is not checked is not
  shown.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from pydantic import BaseModel

__all__ = [
    "MASK",
    "is_secret_key",
    "redact",
    "redact_fields",
    "redact_mapping",
    "redact_text",
    "redact_value",
]

MASK: Final = "***"
"""What a secret is replaced with."""

_MAX_DEPTH: Final = 32  # deeper (or cyclic) structures are cut: nothing unchecked gets out
_TOO_DEEP: Final = "..."
_MAX_CACHED_KEYS: Final = 4096  # keys are few in practice; bound the cache anyway
_MAX_SAFE_TEXTS: Final = 4096  # symbols, actions, event names... repeat; order ids churn
_MAX_SAFE_TEXT_LENGTH: Final = 128
# Values that hold no text to check: shown as they are unless their key is secret.
_PLAIN: Final = frozenset({int, float, bool, type(None), Decimal, datetime, date, time, timedelta})

_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]+")
_SECRET_KEY: Final = re.compile(
    r"password|passwd|passphrase|secret|credential|authorization|cookie"
    r"|token(?!s(?:_|$)|izer)"
    r"|(?:api|private|access|signing|encryption)_?key"
    r"|(?:^|_)(?:pwd|pass|auth|jwt|bearer)(?:_|$)"
)
_DESCRIBES_A_SECRET: Final = frozenset(
    {
        "at", "count", "counts", "endpoint", "enabled", "expires", "expiry", "file", "host",
        "id", "kind", "len", "length", "limit", "name", "path", "remaining", "required",
        "size", "total", "ttl", "type", "uri", "url", "usage", "used", "version",
    }
)  # fmt: skip

# scheme://user:password@  -- the password may itself contain "@" or ":" (greedy, then
# back off to the last "@" before the host); "/", "?", "#" and whitespace end it.
_URL_PASSWORD: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):([^/?#\s]*)@")
_BEARER: Final = re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+")
# key=value, key: value, 'key': 'value'; only the value is replaced, so the key's start
# does not matter, and a key must end right before the separator (token_count=3 stays).
_KEY_VALUE: Final = re.compile(
    r"(?i)(passw(?:or)?d|pwd|secret|token|(?:api|access|private)[_-]?key)"
    r"(['\"]?\s*[=:]\s*['\"]?)([^\s'\",;&@)}\]]+)"
)

_secret_key_cache: dict[str, bool] = {}
# Texts redact_text left unchanged; it is a pure function, so they need no second look.
# Only harmless texts are kept, so the cache never holds on to a secret.
_safe_texts: set[str] = set()


def is_secret_key(key: object) -> bool:
    """Return True if a value stored under ``key`` must not be shown (rules: module docs)."""
    if not isinstance(key, str):
        return False
    cached = _secret_key_cache.get(key)
    if cached is None:
        words = _NOT_ALNUM.sub("_", _CAMEL_BOUNDARY.sub("_", key).lower()).strip("_")
        cached = bool(_SECRET_KEY.search(words)) and (
            words.rpartition("_")[2] not in _DESCRIBES_A_SECRET
        )
        if len(_secret_key_cache) < _MAX_CACHED_KEYS:
            _secret_key_cache[key] = cached
    return cached


def _mask_url_password(match: re.Match[str]) -> str:
    if not match.group(2) or match.group(2) == MASK:
        return match.group(0)
    return f"{match.group(1)}:{MASK}@"


def _mask_value(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{MASK}"


def redact_text(text: str) -> str:
    """Return ``text`` with URL passwords, bearer tokens and ``secret=value`` pairs masked.

    Plain substring tests guard each expression, so the common case (a short text with
    nothing to hide) costs a few ``in`` checks and no regular expression.
    """
    if "@" in text and "://" in text:
        text = _URL_PASSWORD.sub(_mask_url_password, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\g<1>{MASK}", text)
    if "=" in text or ":" in text:
        lowered = text.lower()
        if (
            "pass" in lowered
            or "pwd" in lowered
            or "secret" in lowered
            or "token" in lowered
            or "key" in lowered
        ):
            text = _KEY_VALUE.sub(_mask_value, text)
    return text


def _redact_str(text: str) -> str:
    """:func:`redact_text` for an exact ``str``, remembering short texts found harmless."""
    redacted = redact_text(text)
    if redacted is text and len(text) <= _MAX_SAFE_TEXT_LENGTH:
        if len(_safe_texts) >= _MAX_SAFE_TEXTS:
            _safe_texts.clear()  # start over rather than keep stale ids forever
        _safe_texts.add(text)
    return redacted


def redact_value(value: Any) -> Any:
    """:func:`redact` for a value not under a key (a log event, a trace id), fast if harmless."""
    if type(value) is str:  # exact type: a subclass could answer the set lookup its own way
        return value if value in _safe_texts else _redact_str(value)
    return redact(value)


def redact(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secrets masked in every string and under every secret key.

    Containers are copied, never changed in place; a string, dict, list, tuple or set comes
    back as the same kind (a set as a list), bytes come back as text.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return _TOO_DEEP if _depth >= _MAX_DEPTH else redact_mapping(value, _depth)
    if isinstance(value, list | tuple | set | frozenset):
        if _depth >= _MAX_DEPTH:
            return _TOO_DEEP
        items = [redact(item, _depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "backslashreplace"))
    # Models and dataclasses are written out field by field by the JSON encoder, so their
    # fields are looked at as a mapping's would be (a `password` field is masked).
    if isinstance(value, BaseModel):
        return _TOO_DEEP if _depth >= _MAX_DEPTH else redact_mapping(value.model_dump(), _depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if _depth >= _MAX_DEPTH:
            return _TOO_DEEP
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return redact_mapping(fields, _depth)
    return value


def redact_mapping(mapping: Mapping[Any, Any], _depth: int = 0) -> dict[Any, Any]:
    """Return a copy of ``mapping`` with secret keys masked and every value :func:`redact`-ed."""
    redacted: dict[Any, Any] = {}
    known = _secret_key_cache  # skip the call for a key seen before
    for key, value in mapping.items():
        secret = known.get(key)
        if secret is None:
            secret = is_secret_key(key)
        redacted[key] = _redact_item(secret, value, _depth)
    return redacted


def _redact_item(secret: bool, value: Any, depth: int) -> Any:
    """One value of a mapping at ``depth``; ``secret`` tells whether its key is secret."""
    if isinstance(value, str):
        return MASK if secret and value else redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return MASK if secret and value is not None else value
    return MASK if secret else redact(value, depth + 1)


def redact_fields(fields: dict[Any, Any]) -> dict[Any, Any]:
    """Do what :func:`redact_mapping` does, but in place, and return ``fields``.

    The log hot path: ``fields`` is the call's own ``**kwargs`` dict, nobody else holds it,
    so no copy is made. Keys and texts seen before cost a dict or set lookup; numbers,
    decimals and dates under keys that are not secret are not looked at further.
    """
    known = _secret_key_cache
    safe = _safe_texts
    plain = _PLAIN
    for key, value in fields.items():
        secret = known.get(key)
        if secret is None:
            secret = is_secret_key(key)
        cls = type(value)  # not __class__, which an object may fake
        if secret:
            fields[key] = _redact_item(True, value, 0)
        elif cls is str:
            if value not in safe:
                fields[key] = _redact_str(value)
        elif cls not in plain:
            fields[key] = redact(value, 1)
    return fields
