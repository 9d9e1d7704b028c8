"""PostgreSQL side of the projection: load states, save states + history + offsets atomically."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from projector.domain import SandboxState, Stamp
from projector.handlers import Positioned, Projected
from sandbox_common.readmodel import Status

_COLUMNS = (
    "sandbox_id, project_id, team_id, template_id, status, last_active_at, timeout_at,"
    " metadata, stamps, first_seen_at, last_event_at, revision"
)


class ConcurrentWriteError(RuntimeError):
    """Another projector wrote the same sandbox meanwhile (a rebalance overlap): retry the batch."""


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresTransaction(conn)

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def all_states(
        self, chunk: int, killed_since: datetime
    ) -> AsyncIterator[list[Projected]]:
        """Every sandbox with its revision, `chunk` at a time, from one consistent snapshot;
        killed ones only if their last fact is not older than `killed_since` (older tombstones
        would have expired from Redis anyway)."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            batch: list[Projected] = []
            async for row in conn.cursor(
                f"SELECT {_COLUMNS} FROM sandboxes"  # noqa: S608
                " WHERE status IS DISTINCT FROM 'KILLED' OR last_event_at >= $1",
                killed_since,
                prefetch=chunk,
            ):
                batch.append(Projected(_state_from_row(row), row["revision"]))
                if len(batch) >= chunk:
                    yield batch
                    batch = []
            if batch:
                yield batch


class PostgresTransaction:
    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    async def load(self, sandbox_ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]:
        """Current states and revisions, row-locked in a fixed order (no deadlocks)."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM sandboxes WHERE sandbox_id = ANY($1::text[])"  # noqa: S608
            " ORDER BY sandbox_id FOR UPDATE",
            list(sandbox_ids),
        )
        return {r["sandbox_id"]: (_state_from_row(r), r["revision"]) for r in rows}

    async def save(
        self,
        changed: Sequence[Projected],
        facts: Sequence[Positioned],
        offsets: Iterable[tuple[str, int, int]],
    ) -> None:
        if changed:
            await self._upsert_states(changed)
        if facts:
            await self._insert_history(facts)
        offsets = list(offsets)
        await self._conn.execute(
            "INSERT INTO projector_offsets (topic, partition, next_offset)"
            " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset ="
            " GREATEST(projector_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
            *_columns(offsets, 3),
        )

    async def _insert_history(self, facts: Sequence[Positioned]) -> None:
        # One statement over arrays instead of a row per round trip; DO NOTHING also absorbs a
        # duplicate inside the same batch.
        rows = [
            (
                p.fact.event_id,
                p.fact.sandbox_id,
                p.fact.type,
                p.fact.source,
                p.fact.project_id,
                p.fact.occurred_at,
                p.fact.received_at,
                _json(p.fact.data),
                p.fact.schema_version,
                p.topic,
                p.partition,
                p.offset,
            )
            for p in facts
        ]
        await self._conn.execute(
            "INSERT INTO sandbox_events (event_id, sandbox_id, type, source, project_id,"
            " occurred_at, received_at, data, schema_version, kafka_topic, kafka_partition,"
            " kafka_offset) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $9::int[],"
            " $10::text[], $11::int[], $12::bigint[])"
            " ON CONFLICT (event_id) DO NOTHING",
            *_columns(rows, 12),
        )

    async def _upsert_states(self, changed: Sequence[Projected]) -> None:
        rows = [
            (
                s.sandbox_id,
                s.project_id,
                s.team_id,
                s.template_id,
                s.status.value if s.status else None,
                s.last_active_at,
                s.timeout_at,
                _json(s.metadata),
                _json(_stamps_to_json(s.stamps)),
                s.first_seen_at,
                s.last_event_at,
                p.revision,
            )
            for p in changed
            for s in (p.state,)
        ]
        cols = _columns(rows, 12)
        # The revision guard turns a lost update during a rebalance overlap into a retry.
        written = await self._conn.fetch(
            f"INSERT INTO sandboxes ({_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
            " $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
            " $7::timestamptz[], $8::jsonb[], $9::jsonb[], $10::timestamptz[],"
            " $11::timestamptz[], $12::bigint[])"
            " ON CONFLICT (sandbox_id) DO UPDATE SET project_id = EXCLUDED.project_id,"
            " team_id = EXCLUDED.team_id, template_id = EXCLUDED.template_id,"
            " status = EXCLUDED.status, last_active_at = EXCLUDED.last_active_at,"
            " timeout_at = EXCLUDED.timeout_at, metadata = EXCLUDED.metadata,"
            " stamps = EXCLUDED.stamps, first_seen_at = EXCLUDED.first_seen_at,"
            " last_event_at = EXCLUDED.last_event_at, revision = EXCLUDED.revision,"
            " updated_at = now()"
            " WHERE sandboxes.revision = EXCLUDED.revision - 1"
            " RETURNING sandbox_id",
            *cols,
        )
        if len(written) != len(changed):
            raise ConcurrentWriteError(
                f"{len(changed) - len(written)} sandbox row(s) changed under this batch"
            )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows -> one list per column, the shape `unnest($1::t[], ...)` takes."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _stamps_to_json(stamps: dict[str, Stamp]) -> dict[str, list[Any]]:
    return {k: [v.at.isoformat(), v.rank, v.event_id] for k, v in stamps.items()}


def _state_from_row(row: asyncpg.Record) -> SandboxState:
    stamps = {
        k: Stamp(datetime.fromisoformat(at), rank, event_id)
        for k, (at, rank, event_id) in msgspec.json.decode(row["stamps"]).items()
    }
    return SandboxState(
        sandbox_id=row["sandbox_id"],
        status=Status(row["status"]) if row["status"] else None,
        last_active_at=row["last_active_at"],
        timeout_at=row["timeout_at"],
        project_id=row["project_id"],
        team_id=row["team_id"],
        template_id=row["template_id"],
        metadata=msgspec.json.decode(row["metadata"]),
        first_seen_at=row["first_seen_at"],
        last_event_at=row["last_event_at"],
        stamps=stamps,
    )
