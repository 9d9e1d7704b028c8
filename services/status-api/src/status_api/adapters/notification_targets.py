"""Projects' notification receivers (`notification_targets`, migration 007)."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from sandbox_common.notifications import Target
from status_api.adapters.postgres import Queries

_COLUMNS = "project_id, url, events, updated_at, updated_by"


class StoredTarget(msgspec.Struct, frozen=True):
    project_id: str
    url: str
    events: list[str]
    updated_at: datetime
    updated_by: str | None


def _stored(row: asyncpg.Record) -> StoredTarget:
    return StoredTarget(**{k: row[k] for k in _COLUMNS.split(", ")})


class TargetStore:
    def __init__(self, db: Queries) -> None:
        self._db = db

    async def get(self, project_id: str) -> StoredTarget | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM notification_targets WHERE project_id = $1",  # noqa: S608
            project_id,
        )
        return None if row is None else _stored(row)

    async def put(self, project_id: str, target: Target, actor: str | None) -> StoredTarget:
        row = await self._db.fetchrow(
            "INSERT INTO notification_targets (project_id, url, events, secret, updated_by)"  # noqa: S608
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id) DO UPDATE SET"
            " url = EXCLUDED.url, events = EXCLUDED.events, secret = EXCLUDED.secret,"
            " updated_by = EXCLUDED.updated_by, updated_at = now()"
            f" RETURNING {_COLUMNS}",
            project_id,
            target.url,
            [e.value for e in target.events],
            target.secret,
            actor,
        )
        assert row is not None  # an upsert returns its row or raises
        return _stored(row)

    async def delete(self, project_id: str) -> bool:
        found = await self._db.fetchval(
            "WITH gone AS (DELETE FROM notification_targets WHERE project_id = $1 RETURNING 1)"
            " SELECT count(*) FROM gone",
            project_id,
        )
        return bool(found)
