"""Reads the fleet snapshot from PostgreSQL and Redis; connection failures become one line."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sandbox_common import keys
from sandbox_common.settings import Settings
from sandboxctl.errors import OperatorError
from sandboxctl.fleet import FleetSnapshot


async def read_snapshot(settings: Settings, now: datetime | None = None) -> FleetSnapshot:
    now = now or datetime.now(UTC)
    by_status, last_event_at = await _from_postgres(settings.database_url)
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        stamp = now.timestamp()
        async with client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.IDLE_DEADLINES)
            pipe.zcount(keys.IDLE_DEADLINES, "-inf", stamp)
            pipe.zrange(keys.IDLE_DEADLINES, 0, 0, withscores=True)
            pipe.zcard(keys.TRANSITIONAL)
            pipe.zrange(keys.TRANSITIONAL, 0, 0, withscores=True)
            pipe.get(keys.TICKER_LEASE)
            pipe.pttl(keys.TICKER_LEASE)
            replies = await pipe.execute()
        indexed, due, first_due, transitional, first_stuck, holder, ttl_ms = replies
    except (RedisError, OSError) as exc:
        raise OperatorError(f"cannot read Redis ({exc}); check REDIS_URL") from exc
    finally:
        await client.aclose()
    return FleetSnapshot(
        now=now,
        by_status=by_status,
        last_event_at=last_event_at,
        idle_indexed=int(indexed),
        due=int(due),
        oldest_due_at=_at(first_due) if due else None,
        transitional=int(transitional),
        oldest_transitional_at=_at(first_stuck),
        lease_holder=holder.decode() if holder else None,
        lease_ttl_seconds=ttl_ms / 1000 if holder and ttl_ms > 0 else None,
    )


def _at(first: list[tuple[bytes, float]]) -> datetime | None:
    return datetime.fromtimestamp(first[0][1], UTC) if first else None


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
