"""PostgreSQL as the source of a read-model rebuild: every state in one consistent snapshot,
under the session lock that keeps rebuilds and replays from interleaving."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg

from projector.adapters.policy_rows import load_policies
from projector.adapters.postgres import STATE_COLUMNS, state_from_row
from projector.handlers import Projected
from sandbox_common.policies import Placed
from sandbox_common.postgres_pool import PostgresPool

# Whoever writes the shadow tables or keys (a replay, a Redis rebuild) holds this session lock,
# so two never interleave; PostgreSQL drops it with the session when the process dies.
_REBUILD_LOCK = 0x5A4D_0E91

if TYPE_CHECKING:
    Conn = asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]


async def try_rebuild_lock(conn: Conn) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _REBUILD_LOCK))


async def release_rebuild_lock(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", _REBUILD_LOCK)


class PostgresSnapshot:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def states(self) -> list[Projected]:
        """Every sandbox's state and revision, read in one snapshot."""
        async with self._conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await self._conn.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM sandboxes")  # noqa: S608
        return [Projected(state_from_row(r), r["revision"]) for r in rows]

    async def policies(self) -> list[Placed]:
        """The policies in force (a change after `states` re-indexes what it moves)."""
        return await load_policies(self._conn)

    async def existing(self, sandbox_ids: Collection[str]) -> set[str]:
        """Those of `sandbox_ids` that PostgreSQL holds now."""
        rows = await self._conn.fetch(
            "SELECT sandbox_id FROM sandboxes WHERE sandbox_id = ANY($1::text[])",
            list(sandbox_ids),
        )
        return {r["sandbox_id"] for r in rows}


@asynccontextmanager
async def locked_snapshot(conn: Conn) -> AsyncIterator[PostgresSnapshot | None]:
    """The snapshot under the rebuild lock; None when a replay or another rebuild holds it."""
    if not await try_rebuild_lock(conn):
        yield None
        return
    try:
        yield PostgresSnapshot(conn)
    finally:
        await release_rebuild_lock(conn)


def pool_snapshots(
    pool: PostgresPool,
) -> Callable[[], AbstractAsyncContextManager[PostgresSnapshot | None]]:
    """Snapshots on a connection of `pool`, each under the rebuild lock."""

    @asynccontextmanager
    async def snapshot() -> AsyncIterator[PostgresSnapshot | None]:
        async with pool.acquire() as conn, locked_snapshot(conn) as snap:
            yield snap

    return snapshot
