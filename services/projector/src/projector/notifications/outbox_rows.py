"""The outbox's rows (migration 007), for the deliverers."""

from __future__ import annotations

from collections.abc import Sequence

from projector.notifications.delivery import Claimed
from sandbox_common.postgres_pool import PostgresPool

# Due rows, locked past other replicas (SKIP LOCKED) and leased by moving their next attempt
# past the lease, with their project's receiver (none: unregistered since).
_CLAIM = """
WITH due AS (
    SELECT project_id, delivery_id FROM notification_outbox
    WHERE next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE notification_outbox o
    SET next_attempt_at = now() + make_interval(secs => $2)
    FROM due
    WHERE o.project_id = due.project_id AND o.delivery_id = due.delivery_id
    RETURNING o.project_id, o.delivery_id, o.event, o.body, o.attempts
)
SELECT l.project_id, l.delivery_id, l.event, l.body, l.attempts, t.url, t.secret
FROM leased l LEFT JOIN notification_targets t ON t.project_id = l.project_id
"""
_DONE = """
DELETE FROM notification_outbox o
USING unnest($1::text[], $2::text[]) AS d(project_id, delivery_id)
WHERE o.project_id = d.project_id AND o.delivery_id = d.delivery_id
"""
_RETRY = """
UPDATE notification_outbox
SET attempts = attempts + 1, last_error = $3,
    next_attempt_at = now() + make_interval(secs => $4)
WHERE project_id = $1 AND delivery_id = $2
"""


class OutboxRows:
    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]:
        rows = await self._pool.fetch(_CLAIM, limit, lease_seconds)
        return [
            Claimed(
                r["project_id"],
                r["delivery_id"],
                r["event"],
                bytes(r["body"]),
                r["attempts"],
                r["url"],
                r["secret"] or "",
            )
            for r in rows
        ]

    async def delivered(self, done: Sequence[Claimed]) -> None:
        if done:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    _DONE, [d.project_id for d in done], [d.delivery_id for d in done]
                )

    async def retry(self, item: Claimed, error: str, after_seconds: float) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                _RETRY, item.project_id, item.delivery_id, error[:1000], after_seconds
            )
