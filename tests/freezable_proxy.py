"""A TCP proxy whose open connections can be frozen: a network path that silently stops.

A frozen connection neither moves bytes nor closes: no RST, no FIN, nothing read from
either side, as when a router drops every packet of a flow. Connections opened after
:meth:`FreezableProxy.freeze` go through normally, as when the path comes back for new
connections only. The proxy runs its own event loop in a thread, so it keeps working
whatever the test's loop is doing (or when the client is another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator


class FreezableProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``; freeze on demand.

    Use as a context manager (``with FreezableProxy(6379) as proxy:``), then connect to
    ``proxy.port``.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._frozen: set[asyncio.Event] = set()  # one "move on" event per open connection
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.connections = 0
        # How the target sees the proxied clients: the local port of each upstream connection.
        self.upstream_ports: list[int] = []
        # Chunks that frozen connections swallowed: something was sent into the dead path.
        self.dropped = 0
        # While cut: connections refused (closed at once), as by a server that is down.
        self.refused = 0
        self._cut = False

    def __enter__(self) -> FreezableProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def freeze(self) -> None:
        """Stop every open connection dead (no data, no close); new ones still go through."""
        self._call(self._freeze())

    def close(self) -> None:
        """Close every connection and the listening socket, then stop the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self) -> None:
        """Close every open connection and refuse new ones until :meth:`restore`: a server down."""
        self._call(self._cut_all())

    def restore(self) -> None:
        """Let new connections through again after :meth:`cut`."""
        self._cut = False

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Freeze for the duration of a ``with`` block (connections stay frozen after it)."""
        self.freeze()
        yield

    # -- in the proxy's loop ------------------------------------------------------------------

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        sock: socket.socket = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            writer.close()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self.upstream_ports.append(up_writer.get_extra_info("sockname")[1])
        gate = asyncio.Event()
        gate.set()
        self._frozen.add(gate)
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, gate))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, gate: asyncio.Event
    ) -> None:
        try:
            while True:
                await gate.wait()
                data = await source.read(65536)
                if not gate.is_set():  # frozen while reading: drop what came, like the network
                    self.dropped += bool(data)
                    await asyncio.Event().wait()
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if gate.is_set():
                with contextlib.suppress(Exception):
                    sink.close()

    async def _freeze(self) -> None:
        for gate in self._frozen:
            gate.clear()
        self._frozen.clear()  # connections made from now on are not frozen

    async def _cut_all(self) -> None:
        self._cut = True
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.close()
        self._writers.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.close()
