"""A lean read path for XREADGROUP: a whole-reply RESP parser and no per-entry dicts.

redis-py's pure-Python parser awaits a coroutine per RESP element (a line, then the bytes),
about five per stream entry: reading a batch of small entries cost a consumer more than
everything else it did, and more than the handlers. :class:`WholeReplyParser` reads what
the socket has and parses a complete reply from the bytes in one synchronous pass; when the
reply is not complete yet it reads more and parses again, once the value it stopped in has
arrived (a 100-entry reply comes in one or two reads on a LAN). It speaks RESP2 and RESP3,
so it serves the connection's handshake and errors too. hiredis, when installed, is faster
still and is left in place.

The reply itself is taken raw (no ``parse_stream_list``, which builds a dict per entry
that the bus would only look one field up in): :func:`stream_entries` flattens either
protocol's shape into ``(entry id, envelope or None)`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.asyncio.connection import DefaultParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse

__all__ = [
    "WholeReplyParser",
    "fields_repr",
    "lean_reader",
    "stream_entries",
    "use_whole_reply_parser",
]

_CLOSED = "Connection closed by server."
_CRLF = b"\r\n"
Decode = Callable[[bytes], Any] | None


class _IncompleteError(Exception):
    """The buffer ends before the reply does: read at least ``need`` bytes, parse again."""

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


def lean_reader(reader: redis.Redis) -> None:
    """Give the XREADGROUP connection of ``reader`` (ours, not yet connected) the lean path.

    The reply callback is dropped (the raw reply is flattened by :func:`stream_entries`),
    and the pure-Python parser is replaced; a hiredis or user-chosen parser stays.
    """
    reader.set_response_callback("XREADGROUP", _raw)
    use_whole_reply_parser(reader.connection_pool.connection_kwargs)


def use_whole_reply_parser(settings: dict[str, Any]) -> None:
    """Make connections of ``settings`` parse with :class:`WholeReplyParser`.

    Only in place of redis-py's pure-Python parsers: hiredis, or a parser the user chose,
    stays.
    """
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


class WholeReplyParser(_AsyncRESP3Parser):
    """redis-py's RESP3 parser (RESP2 is a subset), parsing each reply in one pass."""

    def __init__(self, socket_read_size: int) -> None:
        super().__init__(socket_read_size)  # type: ignore[no-untyped-call] # redis-py leaves it bare
        self._pending = b""
        self._need = 1  # bytes to have before parsing again: a large value is parsed once

    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)  # type: ignore[no-untyped-call] # redis-py leaves it bare
        self._pending = b""
        self._need = 1

    async def can_read(self) -> bool:
        return bool(self._pending) or await super().can_read()

    async def read_response(
        self, disable_decoding: bool = False, push_request: bool = False
    ) -> Any:
        stream, encoder = self._stream, self.encoder
        if stream is None or encoder is None:
            raise RedisConnectionError(_CLOSED)
        decode: Decode = None
        if not disable_decoding and encoder.decode_responses:
            decode = encoder.decode
        while True:
            response, is_push = await self._next_reply(decode)
            if not is_push:
                break
            response = await self.handle_push_response(response)  # type: ignore[no-untyped-call]
            if push_request:
                break
        if isinstance(response, RedisConnectionError):
            raise response
        return response

    async def read_replies(self, count: int) -> list[Any]:
        """The next ``count`` replies (of a pipeline), undecoded, error replies as values.

        Parses every complete reply in the buffer in one pass and keeps the rest for the
        next read, so a batch's replies cost one slice, not one each.
        """
        stream = self._stream
        if stream is None:
            raise RedisConnectionError(_CLOSED)
        replies: list[Any] = []
        pushes: list[Any] = []
        while True:
            buf, pos = self._pending, 0
            try:
                while len(replies) < count:
                    response, end = _parse(buf, pos, None, self.parse_error)
                    (pushes if buf[pos] == _PUSH else replies).append(response)
                    pos = end
            except _IncompleteError:
                pass
            self._pending = buf[pos:]
            for push in pushes:
                await self.handle_push_response(push)  # type: ignore[no-untyped-call]
            pushes.clear()
            if len(replies) == count:
                return replies
            data = await stream.read(self._read_size)
            if not data:
                raise RedisConnectionError(_CLOSED)
            self._pending += data

    async def _next_reply(self, decode: Decode) -> tuple[Any, bool]:
        """Parse the next complete reply, reading until there is one.

        Bytes read stay in ``_pending`` until a reply is parsed from them, so a read cut
        short (a cancelled task) loses nothing.
        """
        stream = self._stream
        if stream is None:
            raise RedisConnectionError(_CLOSED)
        while True:
            if len(self._pending) >= self._need:
                try:
                    response, end = _parse(self._pending, 0, decode, self.parse_error)
                except _IncompleteError as short:
                    self._need = short.need
                else:
                    is_push = self._pending[0] == _PUSH
                    self._pending = self._pending[end:]
                    self._need = 1
                    return response, is_push
            data = await stream.read(self._read_size)
            if not data:
                raise RedisConnectionError(_CLOSED)
            self._pending += data


_PUSH = ord(">")


def _parse(buf: bytes, pos: int, decode: Decode, error: Callable[[str], Any]) -> tuple[Any, int]:
    """Parse one RESP2/RESP3 value at ``pos``; return it and the position after it."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _IncompleteError(len(buf) + 1)
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        length = int(buf[pos + 1 : end])
        if length < 0:
            return None, end + 2
        start = end + 2
        stop = start + length
        if len(buf) < stop + 2:
            raise _IncompleteError(stop + 2)
        value: Any = buf[start:stop]
        return (decode(value) if decode else value), stop + 2
    if kind in (42, 126, 62):  # * array, ~ set, > push: lists
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        pos = end + 2
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos, decode, error)
            items.append(item)
        return items, pos
    if kind == 37:  # % map
        count = int(buf[pos + 1 : end])
        pos = end + 2
        mapping = {}
        for _ in range(count):
            key, pos = _parse(buf, pos, decode, error)
            mapping[key], pos = _parse(buf, pos, decode, error)
        return mapping, pos
    line = buf[pos + 1 : end]
    after = end + 2
    if kind == 43:  # + simple string
        return (decode(line) if decode else line), after
    if kind == 58 or kind == 40:  # : integer, ( big number
        return int(line), after
    if kind == 45:  # - error
        return error(line.decode("utf-8", errors="replace")), after
    if kind == 95:  # _ null
        return None, after
    if kind == 44:  # , double
        return float(line), after
    if kind == 35:  # # boolean
        return line == b"t", after
    if kind in (33, 61):  # ! blob error, = verbatim string
        length = int(line)
        if len(buf) < after + length + 2:
            raise _IncompleteError(after + length + 2)
        blob = buf[after : after + length]
        if kind == 33:
            return error(blob.decode("utf-8", errors="replace")), after + length + 2
        text = blob[4:]
        return (decode(text) if decode else text), after + length + 2
    raise InvalidResponse(f"Protocol Error: {buf[pos:end]!r}")
