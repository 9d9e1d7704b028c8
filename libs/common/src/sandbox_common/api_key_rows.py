"""The `api_keys` table (migration 006): written by `sandboxctl api-key`, read by status-api."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import asyncpg
import msgspec

from sandbox_common.api_keys import Issued


class Queries(Protocol):
    """What these need of an asyncpg connection or pool (PostgresPool has it too)."""

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]: ...

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None: ...


class StoredKey(msgspec.Struct, frozen=True):
    key_id: str
    project_id: str
    digest: bytes
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


_COLUMNS = "key_id, project_id, digest, name, created_at, revoked_at"


def _stored(row: asyncpg.Record) -> StoredKey:
    return StoredKey(**dict(row))


class ApiKeyRows:
    def __init__(self, db: Queries) -> None:
        self._db = db

    async def create(self, issued: Issued, project_id: str, name: str | None) -> StoredKey:
        row = await self._db.fetchrow(
            f"INSERT INTO api_keys (key_id, project_id, digest, name) VALUES ($1, $2, $3, $4) "  # noqa: S608
            f"RETURNING {_COLUMNS}",
            issued.key_id,
            project_id,
            issued.digest,
            name,
        )
        assert row is not None  # INSERT ... RETURNING returns the row or raises
        return _stored(row)

    async def find(self, key_id: str) -> StoredKey | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = $1",  # noqa: S608
            key_id,
        )
        return None if row is None else _stored(row)

    async def of_project(self, project_id: str | None) -> list[StoredKey]:
        """A project's keys (None: every project's), oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR project_id = $1 "  # noqa: S608
            "ORDER BY project_id, created_at",
            project_id,
        )
        return [_stored(r) for r in rows]

    async def revoke(self, key_id: str) -> StoredKey | None:
        """None: no such key. A key revoked before keeps its first revocation time."""
        row = await self._db.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 "  # noqa: S608
            f"RETURNING {_COLUMNS}",
            key_id,
        )
        return None if row is None else _stored(row)
