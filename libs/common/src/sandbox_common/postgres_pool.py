"""An asyncpg pool that can be handed to adapters when a process is built, before its event
loop runs: asyncpg binds a pool to the loop that makes it, so the pool itself is made by `open`
(at start) or by the first query, inside the running loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


class PostgresPool:
    def __init__(self, dsn: str, *, min_size: int, max_size: int, timeout: float = 60.0) -> None:
        self._dsn = dsn
        self._sizes = (min_size, max_size)
        self._timeout = timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._opening: asyncio.Lock | None = None

    async def open(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool, made on the first call (again after a failed one)."""
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                min_size, max_size = self._sizes
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=min_size, max_size=max_size, timeout=self._timeout
                )
        return self._pool

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        async with (await self.open()).acquire() as conn:
            yield conn

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await (await self.open()).fetch(query, *args)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        return await (await self.open()).fetchrow(query, *args)

    async def fetchval(self, query: str, *args: object) -> object:
        return await (await self.open()).fetchval(query, *args)

    async def execute(self, query: str, *args: object) -> str:
        return await (await self.open()).execute(query, *args)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
