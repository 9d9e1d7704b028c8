"""Applies the SQL migrations shipped with the projector, once each, safely from many replicas.

Hand-written instead of alembic: plain SQL files and ~30 lines keep the projector free of an ORM.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)
_LOCK_ID = 0x5A4D_B0C5  # any constant shared by all replicas


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("projector.migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text()) for name in names]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("applied migration %s", name, extra={"migration": name})
            applied.append(name)
        return applied
    finally:
        await conn.close()
