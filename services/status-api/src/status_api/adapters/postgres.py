"""Reads of PostgreSQL, the source of truth: a sandbox's history and the fleet (admin).

The hot status reads never come here (they are Redis only); these are operator questions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg
import msgspec

from sandbox_common.envelope import MOVES_LAST_ACTIVITY
from sandbox_common.readmodel import Status
from sandbox_common.state_columns import decode_cycles, decode_lifecycle


class Queries(Protocol):
    """The part of an asyncpg pool these reads use."""

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]: ...

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None: ...

    async def fetchval(self, query: str, *args: object) -> object: ...


class HistoryRow(msgspec.Struct, frozen=True):
    event_id: str
    type: str
    source: str
    project_id: str | None
    occurred_at: datetime
    received_at: datetime
    data: dict[str, Any]


class FleetRow(msgspec.Struct, frozen=True):
    sandbox_id: str
    project_id: str | None
    status: Status
    last_active_at: datetime | None
    timeout_at: datetime | None
    template_id: str | None
    metadata: dict[str, str]
    last_activity_source: str | None
    # Not read: the fleet list shows no team. With it the row is a state a status document is
    # made from (readmodel.DocSource). statusChangedAt is read: a policy's delete counts from it.
    status_changed_at: datetime | None = None
    team_id: str | None = None
    # The start of its run (the projector's "run" register): E2B's hard end is counted from it.
    run_started_at: datetime | None = None
    on_timeout: str | None = None
    auto_resume: bool | None = None
    idle_pauses: tuple[datetime, ...] = ()
    resumes: tuple[datetime, ...] = ()
    busy_until: datetime | None = None


_ACTIVITY_TYPES = sorted(t.value for t in MOVES_LAST_ACTIVITY)

# Newest first along sandbox_events_sandbox_idx (sandbox_id, occurred_at, event_id), one range of
# it per daily partition. A later page is bounded by the last row seen: the plain bound on
# occurred_at (the partition key) leaves out every newer partition, which the row comparison
# alone would not.
_HISTORY_COLUMNS = "event_id, type, source, project_id, occurred_at, received_at, data"
_HISTORY_FIRST = f"""
SELECT {_HISTORY_COLUMNS} FROM sandbox_events
WHERE sandbox_id = $1
ORDER BY occurred_at DESC, event_id DESC
LIMIT $2
"""  # noqa: S608
_HISTORY_BEFORE = f"""
SELECT {_HISTORY_COLUMNS} FROM sandbox_events
WHERE sandbox_id = $1 AND occurred_at <= $2 AND (occurred_at, event_id) < ($2, $3)
ORDER BY occurred_at DESC, event_id DESC
LIMIT $4
"""  # noqa: S608

_LAST_ACTIVITY = f"""
SELECT {_HISTORY_COLUMNS} FROM sandbox_events
WHERE sandbox_id = $1 AND type = ANY($2::text[])
ORDER BY occurred_at DESC
LIMIT 1
"""  # noqa: S608

# The source of the newest activity fact per listed sandbox: one index probe per row of a page.
_FLEET = """
SELECT s.sandbox_id, s.project_id, s.status, s.last_active_at, s.timeout_at, s.template_id,
       s.metadata, a.source AS last_activity_source,
       (s.stamps->'run'->>0)::timestamptz AS run_started_at, s.lifecycle, s.recent_cycles,
       (s.stamps->'status'->>0)::timestamptz AS status_changed_at
FROM sandboxes s
LEFT JOIN LATERAL (
  SELECT e.source FROM sandbox_events e
  WHERE e.sandbox_id = s.sandbox_id AND e.type = ANY($5::text[])
  ORDER BY e.occurred_at DESC LIMIT 1
) a ON true
WHERE s.status IS NOT NULL AND s.status <> 'KILLED'
  AND ($1::text IS NULL OR s.status = $1)
  AND ($2::text IS NULL OR s.project_id = $2)
  AND ($3::text IS NULL OR s.sandbox_id > $3)
ORDER BY s.sandbox_id
LIMIT $4
"""

_COUNTS = """
SELECT status, count(*) AS n
FROM sandboxes
WHERE status IS NOT NULL AND status <> 'KILLED' AND ($1::text IS NULL OR project_id = $1)
GROUP BY status
"""


def _json(value: object) -> Any:
    # asyncpg hands jsonb back as text unless a codec is set; decoding here keeps pools plain.
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


def _history_row(r: asyncpg.Record) -> HistoryRow:
    return HistoryRow(
        r["event_id"],
        r["type"],
        r["source"],
        r["project_id"],
        r["occurred_at"],
        r["received_at"],
        _json(r["data"]),
    )


def _fleet_row(r: asyncpg.Record) -> FleetRow:
    lifecycle = decode_lifecycle(r["lifecycle"])
    cycles = decode_cycles(r["recent_cycles"])
    return FleetRow(
        r["sandbox_id"],
        r["project_id"],
        Status(r["status"]),
        r["last_active_at"],
        r["timeout_at"],
        r["template_id"],
        _json(r["metadata"]),
        r["last_activity_source"],
        run_started_at=r["run_started_at"],
        on_timeout=lifecycle.on_timeout,
        auto_resume=lifecycle.auto_resume,
        idle_pauses=cycles.idle_pauses,
        resumes=cycles.resumes,
        busy_until=lifecycle.busy_until,
        status_changed_at=r["status_changed_at"],
    )


class HistoryStore:
    def __init__(self, pool: Queries) -> None:
        self._pool = pool

    async def page(
        self, sandbox_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[HistoryRow]:
        """Newest first; `before` is the (occurred_at, event_id) of the last row already seen."""
        if before is None:
            rows = await self._pool.fetch(_HISTORY_FIRST, sandbox_id, limit)
        else:
            rows = await self._pool.fetch(_HISTORY_BEFORE, sandbox_id, *before, limit)
        return [_history_row(r) for r in rows]

    async def last_activity(self, sandbox_id: str) -> HistoryRow | None:
        row = await self._pool.fetchrow(_LAST_ACTIVITY, sandbox_id, _ACTIVITY_TYPES)
        return _history_row(row) if row else None

    async def fleet(
        self, status: Status | None, project_id: str | None, after: str | None, limit: int
    ) -> list[FleetRow]:
        rows = await self._pool.fetch(
            _FLEET, status.value if status else None, project_id, after, limit, _ACTIVITY_TYPES
        )
        return [_fleet_row(r) for r in rows]

    async def project_of(self, sandbox_id: str) -> tuple[bool, str | None]:
        """(known, project id): whether the sandbox was ever seen, and whose it is."""
        row = await self._pool.fetchrow(
            "SELECT project_id FROM sandboxes WHERE sandbox_id = $1", sandbox_id
        )
        return (row is not None, row["project_id"] if row else None)

    async def counts(self, project_id: str | None) -> dict[str, int]:
        rows = await self._pool.fetch(_COUNTS, project_id)
        return {r["status"]: r["n"] for r in rows}

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
