"""Composition root of the enforcer process: the ticker, and the reconciler beside it, built
once from settings (no I/O: clients connect on first use)."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis.asyncio as aioredis

from enforcer.learner.loop import periodic_learner
from enforcer.periodic import Job, Periodic
from enforcer.prewarm.loop import periodic_prewarm
from enforcer.reconciler.loop import periodic_reconciler
from enforcer.schedule import parse_schedule
from enforcer.settings import TickerSettings
from enforcer.ticker import metrics
from enforcer.ticker.job import TickJob
from enforcer.ticker.tick import TickOptions
from sandbox_common.broker import PatientKafkaBroker
from sandbox_common.kafka_publisher import KafkaPublisher, Shape
from sandbox_common.probes import failing
from sandbox_common.readmodel.coordination import Lease, LeaseName, RequestedPauses
from sandbox_common.readmodel.reader import ReadModelReader

log = logging.getLogger("enforcer")
# The producer's batch per partition: a tick's 1,000 requests (~0.5 MB) per partition and round
# trip, compressed well under the broker's 1 MiB limit per batch.
TICK_BATCH_BYTES = 512 * 1024


class TickerParts:
    def __init__(self, settings: TickerSettings, broker: PatientKafkaBroker) -> None:
        s = settings
        self._broker = broker
        self._redis: aioredis.Redis = s.redis()
        schedule = parse_schedule(s.enforcer_schedule)
        # aiokafka's producer itself, not the FastStream broker's: a tick hands 10,000s of
        # records over at once, and FastStream's publish costs as much again per record.
        self._publisher = KafkaPublisher(
            broker.connection,
            s.ingest_publish_timeout_seconds,
            client_id="sandbox-enforcer",
            shape=Shape(batch_bytes=TICK_BATCH_BYTES),
        )
        job = TickJob(
            ReadModelReader(self._redis, s.redis_layout()),
            self._publisher,
            # Not asked again until a stuck one would be repaired anyway.
            RequestedPauses(self._redis, s.enforcer_stuck_after_seconds),
            TickOptions(
                batch_size=s.enforcer_batch_size,
                dry_run=s.enforcer_dry_run,
                stuck_after=timedelta(seconds=s.enforcer_stuck_after_seconds),
            ),
            s.clock(),
        )
        self.ticks = Periodic(
            Job(
                "[Sandbox Idle Enforcer] tick",
                job,
                log,
                not_leader=metrics.TICKS.labels(outcome="not_leader").inc,
                failed=metrics.TICKS.labels(outcome="error").inc,
            ),
            schedule,
            Lease(self._redis, LeaseName.TICKER, s.enforcer_lease_seconds),
            enabled=s.enforcer_enabled,
        )
        self.reconciles = periodic_reconciler(s, self._redis)
        self.learns = periodic_learner(s, self._redis)
        self.prewarms = periodic_prewarm(s, self._redis, self._publisher)
        log.info(
            "enforcer ticking on %r (enabled=%s, dry_run=%s)",
            schedule.expression,
            s.enforcer_enabled,
            s.enforcer_dry_run,
        )

    async def start(self) -> None:
        await self._publisher.start()
        await self.ticks.start()
        if self.reconciles is not None:
            await self.reconciles.start()
        for extra in (self.learns, self.prewarms):
            if extra is not None:
                await extra.start()

    async def stop(self) -> None:
        """No tick or pass starts any more; one in flight is cancelled."""
        await self.ticks.stop()
        if self.reconciles is not None:
            await self.reconciles.stop()
        for extra in (self.learns, self.prewarms):
            if extra is not None:
                await extra.stop()

    async def close(self) -> None:
        await self._publisher.stop()
        await self._redis.aclose()

    async def problems(self) -> list[str]:
        loop = [] if self.ticks.running else ["ticker: loop not running"]
        producer = [] if self._publisher.problem is None else [self._publisher.problem]
        return loop + producer + await failing(self._broker, {"redis": self._redis.ping})
