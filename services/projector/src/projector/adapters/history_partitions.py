"""The history's partitions in PostgreSQL: made ahead, split out of the default partition, dropped
once aged out (what `projector.history_retention.plan` says), under one lock for all replicas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from projector.history_retention import day_of, default_partition, partition_name, plan

if TYPE_CHECKING:
    import asyncpg

    Conn = asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]

HISTORY = "sandbox_events"
# Held for the transaction that changes partitions: replicas take turns, and `sandboxctl
# history prune` waits for the one at work.
_LOCK = 0x5A4D_4157


@dataclass(frozen=True)
class Maintained:
    created: tuple[str, ...]
    dropped: tuple[str, ...]
    purged: int  # facts deleted from the default partition (before the window)
    since: datetime | None  # the history keeps facts from then on (None: all)


async def maintain(
    conn: Conn, now: datetime, retention_days: int, *, wait: bool = False
) -> Maintained | None:
    """Apply the plan in one transaction; None when another replica holds the lock (and `wait`
    is False): it is doing the same."""
    async with conn.transaction():
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
            return None
        existing, in_default = await _layout(conn)
        todo = plan(now, retention_days, existing, in_default)
        await _create(conn, todo.create, set(todo.create) & in_default)
        for day in todo.drop:
            await conn.execute(f"DROP TABLE {partition_name(HISTORY, day)}")
        purged = 0
        if todo.purge_before is not None:
            status = await conn.execute(
                f"DELETE FROM {default_partition(HISTORY)} WHERE occurred_at < $1",  # noqa: S608
                todo.purge_before,
            )
            purged = int(status.rsplit(" ", 1)[1])
    return Maintained(
        tuple(partition_name(HISTORY, d) for d in todo.create),
        tuple(partition_name(HISTORY, d) for d in todo.drop),
        purged,
        todo.purge_before,
    )


async def _layout(conn: Conn) -> tuple[set[date], set[date]]:
    """The days that have a partition, and the days of the default partition's facts."""
    names = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass",
        HISTORY,
    )
    existing = {d for r in names if (d := day_of(HISTORY, r["relname"])) is not None}
    # A scan of the default partition: it holds only the odd late or far-future fact.
    days = await conn.fetch(
        "SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date AS day"  # noqa: S608
        f" FROM {default_partition(HISTORY)}"
    )
    return existing, {r["day"] for r in days}


def _bounds(day: date) -> str:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return f"FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"


async def _create(conn: Conn, days: tuple[date, ...], holding: set[date]) -> None:
    """New partitions; the default partition's facts of those days move into them. PostgreSQL
    refuses a partition whose rows sit in the default, so the default is detached meanwhile
    (the table is locked for this transaction: writers wait, nothing is refused)."""
    if not days:
        return
    default = default_partition(HISTORY)
    if holding:
        await conn.execute(f"ALTER TABLE {HISTORY} DETACH PARTITION {default}")
    for day in days:
        await conn.execute(
            f"CREATE TABLE {partition_name(HISTORY, day)} PARTITION OF {HISTORY}"
            f" FOR VALUES {_bounds(day)}"
        )
    if holding:
        await conn.execute(
            f"WITH moved AS (DELETE FROM {default}"  # noqa: S608
            " WHERE (occurred_at AT TIME ZONE 'UTC')::date = ANY($1::date[]) RETURNING *)"
            f" INSERT INTO {HISTORY} SELECT * FROM moved",
            sorted(holding),
        )
        await conn.execute(f"ALTER TABLE {HISTORY} ATTACH PARTITION {default} DEFAULT")
