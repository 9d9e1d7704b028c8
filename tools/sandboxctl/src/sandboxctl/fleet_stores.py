"""Reads the fleet snapshot from PostgreSQL and Redis; connection failures become one line."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import asyncpg
from redis.exceptions import RedisError

from sandbox_common.readmodel.coordination import LeaseName, lease_holder
from sandbox_common.readmodel.reader import ReadModelReader
from sandboxctl.errors import OperatorError
from sandboxctl.fleet import FleetSnapshot
from sandboxctl.settings import Settings


async def read_snapshot(settings: Settings, now: datetime | None = None) -> FleetSnapshot:
    now = now or datetime.now(UTC)
    by_status, last_event_at = await _from_postgres(settings.database_url)
    client = settings.redis()
    try:
        indexes = await ReadModelReader(client, settings.redis_layout()).summary(now)
        lease = await lease_holder(client, LeaseName.TICKER)
    except (RedisError, OSError) as exc:
        raise OperatorError(f"cannot read Redis ({exc}); check REDIS_URL") from exc
    finally:
        await client.aclose()
    return FleetSnapshot(
        now=now,
        by_status=by_status,
        last_event_at=last_event_at,
        lease_holder=lease.owner if lease else None,
        lease_ttl_seconds=lease.seconds_left if lease else None,
        **dataclasses.asdict(indexes),  # the enforcer's indexes, as they are
    )


async def _from_postgres(url: str) -> tuple[dict[str, int], datetime | None]:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise OperatorError(f"cannot connect to PostgreSQL ({exc}); check DATABASE_URL") from exc
    try:
        rows = await conn.fetch(
            "SELECT coalesce(status, 'UNKNOWN') AS status, count(*) AS n,"
            " max(last_event_at) AS newest FROM sandboxes GROUP BY 1"
        )
    except asyncpg.UndefinedTableError as exc:
        raise OperatorError("no sandboxes table: run `sandboxctl migrate` first") from exc
    finally:
        await conn.close()
    newest = [r["newest"] for r in rows if r["newest"] is not None]
    return {r["status"]: int(r["n"]) for r in rows}, max(newest, default=None)
