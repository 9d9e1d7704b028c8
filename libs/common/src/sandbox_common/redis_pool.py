"""A Redis connection pool that waits for a free connection instead of failing, cheaply.

redis-py's plain pool raises "Too many connections" when a burst needs more than its maximum
(a thousand SSE clients opening at once did); its blocking pool waits, but takes a condition,
a lock and a timeout context on every command, which cost as much as a status read itself. A
semaphore taken around the plain pool's own get/release waits only when the pool is full.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection


class BoundedConnectionPool(aioredis.ConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        await self._slots.acquire()
        try:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            # The plain pool already took the connection back (release() below saw no slot).
            self._slots.release()
            raise
        connection._holds_slot = True  # type: ignore[attr-defined]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            if getattr(connection, "_holds_slot", False):
                connection._holds_slot = False  # type: ignore[attr-defined]
                self._slots.release()


def bounded_client(url: str, max_connections: int) -> aioredis.Redis:
    return aioredis.Redis(
        connection_pool=BoundedConnectionPool.from_url(url, max_connections=max_connections)
    )
