"""A lean read path for XREADGROUP: a whole-reply RESP parser and no per-entry dicts.

The parser (:class:`~.parser.WholeReplyParser`, the fast path) replaces redis-py's
pure-Python one on the bus's own connections, when the installed redis-py is one it was
tested with; hiredis, when installed, is faster still and is left in place, as is a parser
the user chose.

The reply itself is taken raw (no ``parse_stream_list``, which builds a dict per entry
that the bus would only look one field up in): :func:`stream_entries` flattens either
protocol's shape into ``(entry id, envelope or None)`` pairs. That part is public API
(a response callback) and stays on whatever the redis-py version.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import DefaultParser

__all__ = ["fields_repr", "lean_reader", "stream_entries", "text", "use_whole_reply_parser"]


def lean_reader(reader: Any, *, fast: bool) -> None:
    """Give the XREADGROUP connection of ``reader`` (ours, not yet connected) the lean path.

    The reply callback is dropped (the raw reply is flattened by :func:`stream_entries`),
    and with ``fast``, the pure-Python parser is replaced; a hiredis or user-chosen parser
    stays.
    """
    reader.set_response_callback("XREADGROUP", _raw)
    if fast:  # never on a cluster (``RedisCluster`` has no one pool to change)
        use_whole_reply_parser(reader.connection_pool.connection_kwargs, fast=fast)


def use_whole_reply_parser(settings: dict[str, Any], *, fast: bool) -> None:
    """With ``fast``, make connections of ``settings`` parse with ``WholeReplyParser``.

    Only in place of redis-py's pure-Python parsers: hiredis, or a parser the user chose,
    stays. Without ``fast`` (a redis-py the parser was not tested with) nothing changes.
    """
    if not fast:
        return
    # Imported here, not at the top: both are private to redis-py, and an untested redis-py
    # may have moved them. Only a tested one gets this far.
    from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser

    from .parser import WholeReplyParser

    if settings.get("parser_class", DefaultParser) in (_AsyncRESP3Parser, _AsyncRESP2Parser):
        settings["parser_class"] = WholeReplyParser


def _raw(response: Any, **options: Any) -> Any:
    return response


def stream_entries(reply: Any, field: bytes) -> list[tuple[Any, bytes | None]]:
    """``(id, value of field)`` per entry of a raw XREADGROUP reply, RESP2 or RESP3.

    The value is None for an entry deleted while pending (its fields are nil); an entry
    without the field (written by someone else) gets its fields printed, for the bus to
    set aside.
    """
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [s[1] for s in reply]
    out: list[tuple[Any, bytes | None]] = []
    for entries in streams:
        for entry_id, fields in entries or ():
            if fields is None:
                out.append((entry_id, None))
            elif len(fields) == 2 and fields[0] == field:
                out.append((entry_id, fields[1]))
            else:
                pairs = dict(zip(fields[::2], fields[1::2], strict=True))
                value = pairs.get(field)
                out.append((entry_id, value if value is not None else fields_repr(pairs)))
    return out


def fields_repr(pairs: dict[Any, Any]) -> bytes:
    """What the bus sets aside for an entry it did not write: its fields, printed."""
    return repr(pairs).encode()


def text(value: Any) -> str:
    """An entry id or a name as redis-py returned it (bytes or str), as a str."""
    return value.decode() if isinstance(value, bytes) else str(value)
