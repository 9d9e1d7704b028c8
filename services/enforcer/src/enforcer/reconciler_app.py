"""The periodic reconciler, run inside the enforcer process next to the ticker: on
`RECONCILER_SCHEDULE` (default every 5 minutes), the replica holding its lease compares our
state with E2B's list and publishes corrections. Also run once by `sandboxctl reconcile`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import redis.asyncio as aioredis

from enforcer.rate_limit import TokenBucket
from enforcer.reconcile import Plan
from enforcer.reconcile_adapters import E2BInventory, PostgresKnown
from enforcer.reconciler import reconcile
from enforcer.schedule import Schedule
from enforcer.ticker_adapters import RedisLease
from sandbox_common import keys
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.settings import Settings

log = logging.getLogger("reconciler")


@dataclass(frozen=True)
class Parts:
    known: PostgresKnown
    inventory: E2BInventory
    publisher: KafkaPublisher


@asynccontextmanager
async def parts(settings: Settings) -> AsyncIterator[Parts]:
    settings.require("e2b_api_key")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    http = httpx.AsyncClient(
        base_url=settings.e2b_api_url.rstrip("/"),
        headers={"X-API-Key": settings.e2b_api_key, "Accept": "application/json"},
        timeout=settings.e2b_timeout_seconds,
    )
    publisher = KafkaPublisher(
        settings.kafka_bootstrap_servers,
        settings.ingest_publish_timeout_seconds,
        client_id="sandbox-reconciler",
    )
    try:
        pace = TokenBucket(settings.e2b_rate_per_second, settings.e2b_rate_burst)
        yield Parts(PostgresKnown(pool), E2BInventory(http, pace), publisher)
    finally:
        await publisher.stop()
        await http.aclose()
        await pool.close()


async def reconcile_once(settings: Settings, *, dry_run: bool = False) -> Plan:
    async with parts(settings) as p:
        return await reconcile(
            datetime.now(UTC),
            p.known,
            p.inventory,
            p.publisher,
            project_key=settings.project_metadata_key,
            dry_run=dry_run,
        )


class ReconcileLoop:
    def __init__(self, settings: Settings, schedule: Schedule) -> None:
        self._settings = settings
        self._schedule = schedule
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self._settings
        if not s.reconciler_enabled or not s.e2b_api_key:
            log.warning("reconciler off (RECONCILER_ENABLED=false or no E2B_API_KEY)")
            return
        self._redis = aioredis.Redis.from_url(s.redis_url)
        log.info("reconciler comparing with E2B on %r", self._schedule.expression)
        self._task = asyncio.create_task(self._run(), name="reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()

    async def _run(self) -> None:
        assert self._redis is not None
        s = self._settings
        lease = RedisLease(self._redis, s.enforcer_lease_seconds, key=keys.RECONCILER_LEASE)
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((self._schedule.next_after(now) - now).total_seconds())
            try:
                if await lease.hold():
                    await reconcile_once(s, dry_run=s.enforcer_dry_run)
            except Exception:  # a failed pass is logged; the next one tries again
                log.exception("[Reconciler] pass failed")
