"""The reconciler's composition: each pass opens what it needs (PostgreSQL, E2B, a producer)
and closes it after, since passes are minutes apart. Run on `RECONCILER_SCHEDULE` (default
every 5 minutes) inside the enforcer process, by the replica holding its lease; and once by
`sandboxctl reconcile`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis

from enforcer.periodic import Job, Periodic
from enforcer.reconciler.adapters import E2BInventory, PostgresKnown
from enforcer.reconciler.reconcile import PassOptions, Ports, reconcile
from enforcer.reconciler.rules import Plan
from enforcer.schedule import parse_schedule
from enforcer.settings import TickerSettings
from sandbox_common.e2b_api.client import E2BApi
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.readmodel.coordination import Lease, LeaseName, SharedBudget

log = logging.getLogger("reconciler")


@asynccontextmanager
async def parts(
    settings: TickerSettings, redis: aioredis.Redis | None = None
) -> AsyncIterator[Ports]:
    """With `redis`, E2B calls take their slots from the budget the actuators share."""
    settings.require("e2b_api_key")
    async with AsyncExitStack() as stack:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        stack.push_async_callback(pool.close)
        # Every call is paced: a pass over a fleet we know much more of than E2B lists (a
        # confirming GET each) must stay far under E2B's per-team rate limit.
        api = E2BApi.of(settings, pace=SharedBudget.of(redis, settings) if redis else None)
        stack.push_async_callback(api.aclose)
        publisher = KafkaPublisher(
            settings.kafka_connection(),
            settings.ingest_publish_timeout_seconds,
            client_id="sandbox-reconciler",
        )
        stack.push_async_callback(publisher.stop)
        yield Ports(PostgresKnown(pool), E2BInventory(api), publisher)


async def reconcile_once(
    settings: TickerSettings, *, dry_run: bool = False, redis: aioredis.Redis | None = None
) -> Plan:
    async with parts(settings, redis) as ports:
        options = PassOptions(
            project_key=settings.project_metadata_key,
            dry_run=dry_run,
            lifecycle_reads=settings.reconciler_lifecycle_reads,
        )
        return await reconcile(datetime.now(UTC), ports, options)


def periodic_reconciler(settings: TickerSettings, redis: aioredis.Redis) -> Periodic | None:
    """None when it is off (RECONCILER_ENABLED=false, or no E2B_API_KEY to ask E2B with)."""
    if not settings.reconciler_enabled or not settings.e2b_api_key:
        log.warning("reconciler off (RECONCILER_ENABLED=false or no E2B_API_KEY)")
        return None

    async def one_pass() -> None:
        await reconcile_once(settings, dry_run=settings.enforcer_dry_run, redis=redis)

    schedule = parse_schedule(settings.reconciler_schedule, "RECONCILER_SCHEDULE")
    log.info("reconciler comparing with E2B on %r", schedule.expression)
    lease = Lease(redis, LeaseName.RECONCILER, settings.enforcer_lease_seconds)
    return Periodic(Job("[Reconciler] pass", one_pass, log), schedule, lease)
