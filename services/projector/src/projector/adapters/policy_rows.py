"""PostgreSQL side of applying policies: the policies in force (`project_policies`), a channel
that says when they changed, and the RUNNING sandboxes a change may move, read in pages and
given a new revision when their document must be written again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import asyncpg

from projector.adapters.postgres import POLICIES_CHANNEL, STATE_COLUMNS, Pool, state_from_row
from projector.handlers import Projected
from sandbox_common.policies import Placed, decode_policy

_COLUMNS = ", ".join(STATE_COLUMNS)
_RUNNING = f"""
SELECT {_COLUMNS} FROM sandboxes
WHERE status IN ('RUNNING', 'PAUSED') AND ($1::text IS NULL OR project_id = $1)
AND sandbox_id > $2
ORDER BY sandbox_id LIMIT $3
"""  # noqa: S608
# A new revision only for rows still at the revision their document was judged from: a row the
# live projector moved meanwhile was written with whatever policies it had, and the next pass
# judges it again.
_BUMP = f"""
UPDATE sandboxes AS s SET revision = s.revision + 1, updated_at = now()
FROM unnest($1::text[], $2::bigint[]) AS u(sandbox_id, revision)
WHERE s.sandbox_id = u.sandbox_id AND s.revision = u.revision
RETURNING {", ".join(f"s.{c}" for c in STATE_COLUMNS)}
"""  # noqa: S608


class Fetches(Protocol):
    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]: ...


async def load_policies(db: Fetches) -> list[Placed]:
    rows = await db.fetch(
        "SELECT project_id, policy::text AS policy, kafka_partition, kafka_offset"
        " FROM project_policies"
    )
    return [
        Placed(
            r["project_id"],
            r["kafka_partition"],
            r["kafka_offset"],
            decode_policy(r["policy"].encode()),
        )
        for r in rows
    ]


class StoredPolicies:
    def __init__(self, db: Fetches) -> None:
        self._db = db

    async def load(self) -> list[Placed]:
        return await load_policies(self._db)


class RunningRows:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def page(self, project_id: str | None, after: str, limit: int) -> list[Projected]:
        """RUNNING and PAUSED sandboxes (of one project, or all) by id, after `after`: those
        a policy gives deadlines (a pause, a delete)."""
        rows = await self._pool.fetch(_RUNNING, project_id, after, limit)
        return [Projected(state_from_row(r), r["revision"]) for r in rows]

    async def bump(self, judged: Sequence[Projected]) -> list[Projected]:
        """A revision more for each row still at its judged revision; those rows, as now."""
        if not judged:
            return []
        ids = [p.state.sandbox_id for p in judged]
        revisions = [p.revision for p in judged]
        rows = await self._pool.fetch(_BUMP, ids, revisions)
        return [Projected(state_from_row(r), r["revision"]) for r in rows]


class Listening:
    """`changed` is set whenever `project_policies` changed, and when the connection is lost
    (the waiter then reloads, sees `lost` and listens again); the waiter clears it."""

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self.changed = asyncio.Event()
        self._conn = conn

    @property
    def lost(self) -> bool:
        return self._conn.is_closed()

    def _set(self, *_: object) -> None:
        self.changed.set()


@contextlib.asynccontextmanager
async def policy_changes(dsn: str) -> AsyncIterator[Listening]:
    """Listening on a connection of its own. Raises when the connection cannot be had."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    listening = Listening(conn)
    try:
        await conn.add_listener(POLICIES_CHANNEL, listening._set)
        conn.add_termination_listener(listening._set)
        yield listening
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), timeout=5)
