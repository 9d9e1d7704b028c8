"""The learner's composition: each run opens what it needs (PostgreSQL, a producer) and closes
it after, since runs are an hour apart. Run on ADAPTIVE_IDLE_SCHEDULE inside the enforcer
process, by the replica holding its lease."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis

from enforcer.learner import metrics
from enforcer.learner.adapters import PostgresHistory
from enforcer.learner.learn import LearnOptions, learn_all
from enforcer.periodic import Job, Periodic
from enforcer.schedule import parse_schedule
from enforcer.settings import TickerSettings
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.readmodel.coordination import Lease, LeaseName

log = logging.getLogger("learner")


async def learn_once(settings: TickerSettings) -> int:
    """Amendments published."""
    async with AsyncExitStack() as stack:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        stack.push_async_callback(pool.close)
        publisher = KafkaPublisher(
            settings.kafka_connection(),
            settings.ingest_publish_timeout_seconds,
            client_id="sandbox-learner",
        )
        stack.push_async_callback(publisher.stop)
        options = LearnOptions(
            lookback=timedelta(days=settings.adaptive_idle_lookback_days),
            regret_seconds=settings.regret_window_seconds,
        )
        published = await learn_all(PostgresHistory(pool), publisher, options, settings.clock())
        metrics.RUNS.labels(outcome="ran").inc()
        return len(published)


def periodic_learner(settings: TickerSettings, redis: aioredis.Redis) -> Periodic | None:
    if not settings.adaptive_idle_enabled:
        log.warning("adaptive idle learner off (ADAPTIVE_IDLE_ENABLED=false)")
        return None

    async def one_run() -> None:
        await learn_once(settings)

    schedule = parse_schedule(settings.adaptive_idle_schedule, "ADAPTIVE_IDLE_SCHEDULE")
    log.info("adaptive idle learner on %r", schedule.expression)
    lease = Lease(redis, LeaseName.LEARNER, settings.enforcer_lease_seconds)
    job = Job(
        "[Adaptive idle] run",
        one_run,
        log,
        not_leader=metrics.RUNS.labels(outcome="not_leader").inc,
        failed=metrics.RUNS.labels(outcome="error").inc,
    )
    return Periodic(job, schedule, lease)
