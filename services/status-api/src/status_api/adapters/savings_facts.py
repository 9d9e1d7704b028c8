"""PostgreSQL side of the savings ledger: each sandbox's lifecycle facts inside a period, one
sandbox at a time, in time order. A project's are read through its sandboxes (the history's
(sandbox_id, occurred_at) index); the fleet's stream through a cursor, so a large fleet costs
time, not memory."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import msgspec

from sandbox_common.envelope import FactType
from sandbox_common.postgres_pool import PostgresPool
from sandbox_common.whatif.actual import Seen

_TYPES = sorted(
    t.value
    for t in (
        FactType.CREATED,
        FactType.ACTIVITY,
        FactType.PAUSED,
        FactType.RESUMED,
        FactType.KILLED,
        FactType.WAKE_REQUESTED,
        FactType.WAKE_FAILED,
    )
)
# Only what the ledger reads of the data (E2B's run figures of a pause or a kill, a wake's
# reason), not the whole JSON.
_COLUMNS = (
    "sandbox_id, type, extract(epoch FROM occurred_at)::float8 AS at,"
    " (data->'execution')::text AS execution, data->>'reason' AS reason"
)
_OF_SANDBOXES = (
    f"SELECT {_COLUMNS} FROM sandbox_events WHERE sandbox_id = ANY($1::text[])"  # noqa: S608
    " AND occurred_at >= $2 AND occurred_at < $3 AND type = ANY($4::text[])"
    " ORDER BY sandbox_id, occurred_at"
)
_OF_FLEET = (
    f"SELECT {_COLUMNS} FROM sandbox_events WHERE occurred_at >= $1 AND occurred_at < $2"  # noqa: S608
    " AND type = ANY($3::text[]) ORDER BY sandbox_id, occurred_at"
)
_SANDBOXES = "SELECT sandbox_id FROM sandboxes WHERE project_id = $1"
_CHUNK = 500
_PREFETCH = 5000


class SavingsFacts:
    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def of_project(
        self, project_id: str, since: datetime, until: datetime
    ) -> AsyncIterator[list[Seen]]:
        ids = [r["sandbox_id"] for r in await self._pool.fetch(_SANDBOXES, project_id)]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = await self._pool.fetch(_OF_SANDBOXES, chunk, since, until, _TYPES)
            async for facts in _by_sandbox(_each(rows)):
                yield facts

    async def of_fleet(self, since: datetime, until: datetime) -> AsyncIterator[list[Seen]]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = conn.cursor(_OF_FLEET, since, until, _TYPES, prefetch=_PREFETCH)
            async for facts in _by_sandbox(rows):
                yield facts


async def _each(rows: Iterable[Any]) -> AsyncIterator[Any]:
    for row in rows:
        yield row


async def _by_sandbox(rows: AsyncIterable[Any]) -> AsyncIterator[list[Seen]]:
    """Rows ordered by sandbox, one list of facts per sandbox."""
    current: str | None = None
    facts: list[Seen] = []
    async for row in rows:
        if row["sandbox_id"] != current and facts:
            yield facts
            facts = []
        current = row["sandbox_id"]
        facts.append(_seen(row))
    if facts:
        yield facts


def _seen(row: Any) -> Seen:
    raw = row["execution"]
    data: dict[str, Any] = {"execution": msgspec.json.decode(raw)} if raw else {}
    if row["reason"] is not None:
        data["reason"] = row["reason"]
    return Seen(row["type"], row["at"], data)
