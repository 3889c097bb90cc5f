"""A pipeline's replies read one after another, however the socket cuts them."""

import asyncio
import itertools
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.exceptions import ResponseError

from quantum_core.transports.redis.parser import WholeReplyParser

_reply = st.one_of(
    st.binary(max_size=300).map(lambda b: ("bulk", b)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda n: ("int", n)),
    st.sampled_from(["WRONGTYPE Operation against a key", "ERR nope"]).map(lambda e: ("err", e)),
    st.just(("nil", None)),
)


def _wire(kind: str, value) -> bytes:
    if kind == "bulk":
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if kind == "int":
        return b":%d\r\n" % value
    if kind == "err":
        return b"-%b\r\n" % value.encode()
    return b"_\r\n"


@given(
    replies=st.lists(_reply, min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=8),
    extra=st.binary(max_size=20),
)
def test_replies_come_back_in_order_however_they_arrive(replies, cuts, extra):
    data = b"".join(_wire(kind, value) for kind, value in replies)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})

    async def read():
        parser = WholeReplyParser(socket_read_size=7)
        stream = asyncio.StreamReader()
        encoder = Encoder("utf-8", "strict", False)
        parser.on_connect(SimpleNamespace(_reader=stream, encoder=encoder))
        for start, stop in itertools.pairwise(bounds):
            stream.feed_data(data[start:stop])
        stream.feed_data(b"+NEXT\r\n" + extra)  # the next reply's bytes stay for later
        got = [await parser.read_response(disable_decoding=True) for _ in replies]
        return got, parser._pending + stream._buffer

    got, left = asyncio.run(read())
    for (kind, value), reply in zip(replies, got, strict=True):
        if kind == "err":
            assert isinstance(reply, ResponseError)  # a value: the caller decides
        else:
            assert reply == value
    assert bytes(left) == b"+NEXT\r\n" + extra  # nothing of the next reply was taken


def test_a_push_message_between_replies_goes_to_the_push_handler():
    """RESP3 pushes (pub/sub, invalidations) reach redis-py's handler on every version."""

    async def read():
        parser = WholeReplyParser(socket_read_size=7)
        stream = asyncio.StreamReader()
        parser.on_connect(
            SimpleNamespace(_reader=stream, encoder=Encoder("utf-8", "strict", False))
        )
        pushed = []

        async def on_push(message):
            pushed.append(message)

        parser.set_pubsub_push_handler(on_push)
        stream.feed_data(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n+OK\r\n")
        return await parser.read_response(disable_decoding=True), pushed

    reply, pushed = asyncio.run(read())
    assert reply == b"OK"
    assert pushed == [[b"message", b"ch", b"hi"]]
