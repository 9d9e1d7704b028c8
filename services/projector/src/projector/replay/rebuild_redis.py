"""Redis from PostgreSQL: the fast path after a Redis loss (no topic to read). The states are
read in one snapshot and written under shadow keys with their PostgreSQL revisions, then swapped
in; a document the live projector wrote meanwhile has a higher revision and is kept."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis

from projector.adapters.postgres import STATE_COLUMNS, state_from_row
from projector.handlers import Projected
from projector.replay.pg_shadow import release_rebuild_lock, try_rebuild_lock
from projector.replay.redis_shadow import ShadowReadModel, pointers
from sandbox_common import keys

log = logging.getLogger(__name__)
# Every stale document goes: the ids are re-checked against PostgreSQL just before the swap.
_ANY_REVISION = 2**62


async def rebuild_redis(
    conn: asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
    client: aioredis.Redis,
    *,
    tombstone_ttl_seconds: int,
    default_idle_seconds: int,
    by: str,
) -> tuple[int, int, int]:
    """Returns (documents swapped in, newer live ones kept, stale ones removed)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM sandboxes")  # noqa: S608
    projected = [Projected(state_from_row(r), r["revision"]) for r in rows]
    model = ShadowReadModel(client, tombstone_ttl_seconds, default_idle_seconds)
    await model.clear()
    now = datetime.now(UTC)
    await model.write(projected, now)
    await model.write_pointers(pointers(projected))
    candidates = await model.live_ids() - {p.state.sandbox_id for p in projected}
    if candidates:
        # Created after the snapshot (the live projector wrote them): not stale.
        recent = await conn.fetch(
            "SELECT sandbox_id FROM sandboxes WHERE sandbox_id = ANY($1::text[])",
            list(candidates),
        )
        await model.mark_stale(candidates - {r["sandbox_id"] for r in recent})
    marker = json.dumps({"by": by, "at": now.isoformat(), "source": "postgresql"})
    return await model.swap(_ANY_REVISION, marker)


async def rebuild_if_empty(
    pool: asyncpg.Pool[asyncpg.Record],
    client: aioredis.Redis,
    *,
    tombstone_ttl_seconds: int,
    default_idle_seconds: int,
    by: str,
) -> bool:
    """When the read model's marker is missing (Redis lost it), rebuild it from PostgreSQL; one
    rebuilder at a time (the rebuild lock). Returns whether this call rebuilt it."""
    if await client.exists(keys.READ_MODEL_MARKER):
        return False
    async with pool.acquire() as conn:
        if not await try_rebuild_lock(conn):
            return False  # a replay or another replica is at it
        try:
            log.warning("read model marker missing in Redis: rebuilding it from PostgreSQL")
            swapped, kept, removed = await rebuild_redis(
                conn,
                client,
                tombstone_ttl_seconds=tombstone_ttl_seconds,
                default_idle_seconds=default_idle_seconds,
                by=by,
            )
        finally:
            await release_rebuild_lock(conn)
    log.warning(
        "read model rebuilt from PostgreSQL: %d documents (%d newer kept, %d stale removed)",
        swapped,
        kept,
        removed,
        extra={"swapped": swapped, "kept": kept, "removed": removed},
    )
    return True
