"""Pre-warming's composition: on PREWARM_SCHEDULE (every minute) inside the enforcer process,
by the replica holding its lease, with the ticker's Redis and producer."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from enforcer.periodic import Job, Periodic
from enforcer.prewarm import metrics
from enforcer.prewarm.run import prewarm_once
from enforcer.schedule import parse_schedule
from enforcer.settings import TickerSettings
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.readmodel.coordination import Lease, LeaseName, PrewarmBook
from sandbox_common.readmodel.policies import PolicyReader
from sandbox_common.readmodel.reader import ReadModelReader

log = logging.getLogger("prewarm")


def periodic_prewarm(
    settings: TickerSettings, redis: aioredis.Redis, publisher: KafkaPublisher
) -> Periodic | None:
    if not settings.prewarm_enabled:
        log.warning("pre-warming off (PREWARM_ENABLED=false)")
        return None
    reader = ReadModelReader(redis, settings.redis_layout())
    policies = PolicyReader(redis)
    book = PrewarmBook(redis)
    clock = settings.clock()

    async def one_run() -> None:
        await prewarm_once(policies, reader, book, publisher, clock)
        metrics.RUNS.labels(outcome="ran").inc()

    schedule = parse_schedule(settings.prewarm_schedule, "PREWARM_SCHEDULE")
    log.info("pre-warming on %r", schedule.expression)
    job = Job(
        "[Pre-warm] run",
        one_run,
        log,
        not_leader=metrics.RUNS.labels(outcome="not_leader").inc,
        failed=metrics.RUNS.labels(outcome="error").inc,
    )
    lease = Lease(redis, LeaseName.PREWARM, settings.enforcer_lease_seconds)
    return Periodic(job, schedule, lease)
