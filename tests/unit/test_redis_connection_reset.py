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


async def _resetting_server() -> tuple[asyncio.Server, list[int]]:
    """Answers the connection's handshake like Redis 7, then resets on the first XADD."""
    resets: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if b"XADD" in data:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                resets.append(1)
                writer.transport.abort()  # RST, not FIN
                return
            if b"HELLO" in data:
                writer.write(b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n")
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()

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
