"""History retention: dropping a day's partitions (`sandboxctl history prune`) against deleting
the same rows from one unpartitioned table, as the history was before migration 004.

Both tables (schema `bench_history` of the test database) get ROWS facts that occurred 100 to
100 + DAYS days ago, plus a day of recent ones that stay. Timed: the prune (every old partition
dropped, under the lock, in one transaction) and the DELETE of the same rows, then the VACUUM the
DELETE leaves to do before its space can be reused (a partition dropped leaves nothing).

    source .state/env.sh && uv run python -m bench.history_prune [ROWS] [DAYS]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime

import asyncpg

from projector.adapters.history_partitions import maintain
from projector.adapters.schema import migrate

SCHEMA = "bench_history"
RETENTION_DAYS = 90
_FILL = """
INSERT INTO {table} (event_id, sandbox_id, type, source, project_id, occurred_at, received_at,
                     data, schema_version, kafka_topic, kafka_partition, kafka_offset)
SELECT 'bench-' || i, 'sbx-' || (i % 10000), 'sandbox.lifecycle.updated', 'e2b-webhook', 'p',
       now() - make_interval(days => {oldest}) + i * {step} * interval '1 second',
       now(), '{{"n": 1}}', 1, 'sandbox-lifecycle', i % 12, i
FROM generate_series(1, {rows}) AS i
"""
_UNPARTITIONED = """
DROP TABLE IF EXISTS history_unpartitioned;
CREATE TABLE history_unpartitioned (LIKE sandbox_events INCLUDING DEFAULTS);
ALTER TABLE history_unpartitioned ADD PRIMARY KEY (event_id);
CREATE INDEX ON history_unpartitioned (sandbox_id, occurred_at, event_id);
"""


async def _timed(conn: asyncpg.Connection[asyncpg.Record], sql: str, *args: object) -> float:
    began = time.perf_counter()
    await conn.execute(sql, *args)
    return time.perf_counter() - began


async def measure(rows: int, days: int) -> dict[str, float]:
    base = os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    finally:
        await admin.close()
    url = f"{base}{'&' if '?' in base else '?'}search_path={SCHEMA}"
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_UNPARTITIONED)
        # Spread evenly over the days (`step` seconds apart).
        old = {"oldest": 100 + days, "step": days * 86_400 / rows, "rows": rows}
        recent = {"oldest": 1, "step": 3600 / rows, "rows": rows // 10}
        for table in ("sandbox_events", "history_unpartitioned"):
            await conn.execute(_FILL.format(table=table, **old))
            # Recent facts under ids of their own.
            await conn.execute(
                _FILL.format(table=table, **recent).replace("'bench-' || i", "'new-' || i")
            )
        await maintain(conn, datetime.now(UTC), 0)  # the old days split out of the default
        await conn.execute("VACUUM ANALYZE sandbox_events")
        await conn.execute("VACUUM ANALYZE history_unpartitioned")
        began = time.perf_counter()
        done = await maintain(conn, datetime.now(UTC), RETENTION_DAYS, wait=True)
        prune = time.perf_counter() - began
        assert done is not None
        delete = await _timed(
            conn,
            "DELETE FROM history_unpartitioned WHERE occurred_at < now() - $1 * interval '1 day'",
            RETENTION_DAYS,
        )
        vacuum = await _timed(conn, "VACUUM history_unpartitioned")
        left = await conn.fetchval("SELECT count(*) FROM sandbox_events")
        left_plain = await conn.fetchval("SELECT count(*) FROM history_unpartitioned")
        assert left == left_plain == rows // 10, (left, left_plain)
        return {
            "rows": rows,
            "partitions_dropped": len(done.dropped),
            "prune_seconds": round(prune, 3),
            "delete_seconds": round(delete, 3),
            "vacuum_after_delete_seconds": round(vacuum, 3),
        }
    finally:
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await conn.close()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    print(asyncio.run(measure(rows, days)))


if __name__ == "__main__":
    main()
