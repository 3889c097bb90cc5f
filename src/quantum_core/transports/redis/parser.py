"""A whole-reply RESP parser for redis-py's asyncio connections: the consumer's fast path.

redis-py's pure-Python parser awaits a coroutine per RESP element (a line, then the bytes),
about five per stream entry: reading a batch of small entries cost a consumer more than
everything else it did, and more than the handlers. :class:`WholeReplyParser` parses the
bytes each read brings in one synchronous pass, and keeps what it parsed, with the
containers still open, until the rest of the reply arrives (a 100-entry reply comes in
several reads). It speaks RESP2 and RESP3, so it serves the connection's handshake and
errors too.

It subclasses redis-py's private ``_AsyncRESP3Parser``: this module is imported only when
the installed redis-py is one it was tested with (``quantum_core._redis.fast_path_tested``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis._parsers import _AsyncRESP3Parser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse

__all__ = ["WholeReplyParser"]

_CLOSED = "Connection closed by server."
_CRLF = b"\r\n"
Decode = Callable[[bytes], Any] | None


class WholeReplyParser(_AsyncRESP3Parser):
    """redis-py's RESP3 parser (RESP2 is a subset), parsing each reply's bytes once.

    A large reply arrives in several reads. The values parsed so far are kept, with the
    containers still open, between reads, so each byte is parsed once however the socket
    cuts the reply (parsing again from the start cost a consumer a fifth of its time).
    """

    def __init__(self, socket_read_size: int) -> None:
        super().__init__(socket_read_size)  # type: ignore[no-untyped-call] # redis-py leaves it bare
        self._reset()

    def on_connect(self, connection: Any) -> None:
        """Start a new connection with nothing pending from the last one."""
        super().on_connect(connection)  # type: ignore[no-untyped-call] # redis-py leaves it bare
        self._reset()

    def _reset(self) -> None:
        self._pending = b""  # bytes read and not yet taken by a complete reply
        self._pos = 0  # where parsing goes on in ``_pending``
        self._open: list[list[Any]] = []  # the containers of the reply being parsed

    async def can_read(self) -> bool:
        """Whether a reply (or part of one) is buffered or waiting on the socket."""
        return bool(self._pending) or await super().can_read()

    async def read_response(
        self, disable_decoding: bool = False, push_request: bool = False
    ) -> Any:
        """The next reply (push messages handed to redis-py's handler on the way)."""
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
            # By keyword: redis-py < 6.2 names both arguments, later ones take **kwargs.
            # By keyword: redis-py < 6.2 names both arguments, later ones take **kwargs.
            response = await self.handle_push_response(  # type: ignore[no-untyped-call]
                response, disable_decoding=disable_decoding, push_request=push_request
            )
            if push_request:
                break
        if isinstance(response, RedisConnectionError):
            raise response
        return response

    async def _next_reply(self, decode: Decode) -> tuple[Any, bool]:
        """Parse the next complete reply, reading until there is one.

        Bytes read stay in ``_pending`` until a reply is complete, and the parse state only
        moves forward on bytes already read, so a read cut short (a cancelled task) loses
        nothing.
        """
        stream = self._stream
        if stream is None:
            raise RedisConnectionError(_CLOSED)
        while True:
            buf = self._pending
            if len(buf) > self._pos:
                response, self._pos = _resume(buf, self._pos, self._open, decode, self.parse_error)
                if response is not _MORE:
                    is_push = buf[0] == _PUSH
                    self._pending = buf[self._pos :]
                    self._pos = 0
                    return response, is_push
            data = await stream.read(self._read_size)
            if not data:
                raise RedisConnectionError(_CLOSED)
            self._pending += data


_PUSH = ord(">")
_MORE = object()  # the buffer ends inside the reply: read more, then resume
_LISTS = frozenset(b"*~>")  # array, set, push


def _resume(
    buf: bytes, pos: int, open_: list[list[Any]], decode: Decode, error: Callable[[str], Any]
) -> tuple[Any, int]:
    """Parse RESP2/RESP3 from ``pos``, inside the containers ``open_`` holds.

    Returns the reply and the position after it once the reply is complete; else
    ``_MORE`` and the position of the first value not complete yet, with ``open_``
    holding the containers still being filled (``[container, values left, map key]``).
    """
    size = len(buf)
    while True:
        end = buf.find(_CRLF, pos)
        if end < 0:
            return _MORE, pos
        kind = buf[pos]
        after = end + 2
        if kind == 36:  # $ bulk string
            length = int(buf[pos + 1 : end])
            if length < 0:
                value: Any = None
            else:
                after += length + 2
                if size < after:
                    return _MORE, pos
                value = buf[end + 2 : after - 2]
                if decode:
                    value = decode(value)
        elif kind in _LISTS or kind == 37:  # a container: open it, fill it
            count = int(buf[pos + 1 : end])
            pos = after
            if count > 0:
                if kind == 37:  # % map: keys and values
                    open_.append([{}, 2 * count, _MORE])
                else:
                    open_.append([[], count, None])
                continue
            value = None if count < 0 else {} if kind == 37 else []
        else:
            line = buf[pos + 1 : end]
            if kind == 43:  # + simple string
                value = decode(line) if decode else line
            elif kind == 58 or kind == 40:  # : integer, ( big number
                value = int(line)
            elif kind == 45:  # - error
                value = error(line.decode("utf-8", errors="replace"))
            elif kind == 95:  # _ null
                value = None
            elif kind == 44:  # , double
                value = float(line)
            elif kind == 35:  # # boolean
                value = line == b"t"
            elif kind == 33 or kind == 61:  # ! blob error, = verbatim string
                after += int(line) + 2
                if size < after:
                    return _MORE, pos
                blob = buf[end + 2 : after - 2]
                if kind == 33:
                    value = error(blob.decode("utf-8", errors="replace"))
                else:
                    value = decode(blob[4:]) if decode else blob[4:]
            else:
                raise InvalidResponse(f"Protocol Error: {buf[pos:end]!r}")
        pos = after
        while open_:  # put the value in its container; close the containers now full
            frame = open_[-1]
            container = frame[0]
            if type(container) is list:
                container.append(value)
            elif frame[2] is _MORE:
                frame[2] = value  # a map's key: its value comes next
            else:
                container[frame[2]] = value
                frame[2] = _MORE
            frame[1] -= 1
            if frame[1]:
                break
            open_.pop()
            value = container
        else:
            return value, pos
