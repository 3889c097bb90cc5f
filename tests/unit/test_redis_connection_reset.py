"""A server that resets the connection mid-reply fails a publish as a TransportError.

The publish path reads replies with the parser itself (wire.py), not through redis-py's
``read_response``, which is where redis-py turns a socket's OSError into its
ConnectionError: without the same conversion, a reset (the server killed) reached the
application as a bare ``ConnectionResetError``, and redis-py's retry never ran.
"""

import asyncio
import socket
import struct

import pytest

from quantum_core import RedisStreamsTransport, TransportError


def _commands(buffer: bytearray) -> list[list[bytes]]:
    """The whole RESP commands at the start of ``buffer``, taken out of it.

    TCP keeps no message boundaries: redis-py sends its two CLIENT SETINFO together, and on
    Python 3.12 they arrive in one read (on 3.11 in two), so a reply per read is too few.
    """
    commands = []
    while True:
        try:
            end = buffer.index(b"\r\n")
            args, pos = [], end + 2
            for _ in range(int(buffer[1:end])):
                end = buffer.index(b"\r\n", pos)
                size, pos = int(buffer[pos + 1 : end]), end + 2
                if len(buffer) < pos + size + 2:
                    return commands  # the rest has not arrived yet
                args.append(bytes(buffer[pos : pos + size]))
                pos += size + 2
        except ValueError:  # no whole header yet
            return commands
        commands.append(args)
        del buffer[:pos]


async def _resetting_server() -> tuple[asyncio.Server, list[int]]:
    """Answers the connection's handshake like Redis 7, then resets on the first XADD."""
    resets: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                for name, *_ in _commands(buffer):
                    if name.upper() == b"XADD":
                        sock = writer.get_extra_info("socket")
                        linger = struct.pack("ii", 1, 0)
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                        resets.append(1)
                        writer.transport.abort()  # RST, not FIN
                        return
                    if name.upper() == b"HELLO":
                        writer.write(b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n")
                    else:
                        writer.write(b"+OK\r\n")
                await writer.drain()
        finally:
            # A client that hung up leaves our end open (half-closed) until closed here; on
            # Python 3.12+ Server.wait_closed() waits for every connection, and hung forever.
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, resets


async def test_a_reset_connection_fails_the_publish_as_a_transport_error():
    server, resets = await _resetting_server()
    port = server.sockets[0].getsockname()[1]
    try:
        async with RedisStreamsTransport(f"redis://127.0.0.1:{port}/0") as transport:
            with pytest.raises(TransportError):
                await transport.publish("orders", [b"{}"])
    finally:
        server.close()
        await server.wait_closed()
    assert len(resets) >= 2  # redis-py's retry ran: the reset is a connection error to it
