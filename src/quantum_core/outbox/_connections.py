"""Where the outbox gets a connection of its own: a DSN (connections it opens) or a pool.

The caller's writes never go through here (they use the caller's connection, inside the
caller's transaction); only ``install``, ``status`` and the relay do. asyncpg is imported
on first use, not with ``quantum_core``: it costs about 75 ms.
"""

from __future__ import annotations

from typing import Any

from .._redaction import redact_text

__all__ = ["ConnectionSource"]


class ConnectionSource:
    """Open and give back connections: ``asyncpg.connect(dsn)`` and close, or a pool's."""

    def __init__(self, target: object, *, connect_timeout: float) -> None:
        if isinstance(target, str):
            self.dsn: str | None = target
            self.pool: Any = None
        elif callable(getattr(target, "acquire", None)) and callable(
            getattr(target, "release", None)
        ):
            self.dsn, self.pool = None, target
        else:
            raise TypeError(
                "Outbox needs a PostgreSQL DSN (postgresql://user:password@host:5432/db) or "
                f"an asyncpg pool, got {type(target).__name__}"
            )
        self._timeout = connect_timeout

    async def acquire(self) -> Any:
        """A connection of the outbox's own, open until :meth:`release`."""
        if self.pool is not None:
            return await self.pool.acquire(timeout=self._timeout)
        import asyncpg  # type: ignore[import-untyped]  # 75 ms: only when a connection is made

        return await asyncpg.connect(self.dsn, timeout=self._timeout)

    async def release(self, connection: Any, *, broken: bool = False) -> None:
        """Give ``connection`` back: to the pool, else closed (at once when ``broken``)."""
        if self.pool is not None:
            if broken:
                connection.terminate()  # the pool replaces a terminated connection
            await self.pool.release(connection, timeout=self._timeout)
            return
        if broken or connection.is_closed():
            connection.terminate()
            return
        try:
            await connection.close(timeout=self._timeout)
        except Exception:  # closing politely failed: the server is gone, drop the socket
            connection.terminate()

    def describe(self) -> str:
        """The target for messages and reprs: the DSN without its password, or ``pool``."""
        return redact_text(self.dsn) if self.dsn is not None else "pool"
