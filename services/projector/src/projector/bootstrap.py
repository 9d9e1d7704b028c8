"""Composition root of the projector: pools, adapters and use cases, built once from settings
(no I/O: the PostgreSQL pool is opened on start, Redis connects on first use)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import redis.asyncio as aioredis

from projector.adapters.history_partitions import maintain
from projector.adapters.kafka_state import KafkaStateSnapshots
from projector.adapters.postgres import PostgresStore
from projector.adapters.postgres_snapshot import pool_snapshots
from projector.adapters.redis import RedisReadModel
from projector.handlers import Projection
from projector.pipeline import Pipeline
from projector.read_model_rebuild import observe_memory, rebuild_if_missing
from projector.retries import RetryingProjection
from projector.settings import ProjectorSettings
from sandbox_common import topics
from sandbox_common.broker import BrokerDeadLetters, BrokerFacts, PatientKafkaBroker
from sandbox_common.consumer_lag import LagMonitor
from sandbox_common.postgres_pool import PostgresPool
from sandbox_common.probes import failing
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.shadow import ShadowWriter
from sandbox_common.readmodel.writer import DocumentWriter
from sandbox_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)
# How often a projector makes the history's partitions ahead and drops aged ones (one replica at
# a time does it; the others find nothing left to do).
HISTORY_UPKEEP_SECONDS = 3600.0


class Outbox(BrokerDeadLetters, BrokerFacts):
    """Poison records to the dead-letter topic, derived facts to `sandbox-lifecycle`."""


class ProjectorParts:
    def __init__(self, settings: ProjectorSettings, broker: PatientKafkaBroker) -> None:
        s = self._settings = settings
        self._broker = broker
        self._pool = PostgresPool(s.database_url, min_size=1, max_size=4)
        self._redis: aioredis.Redis = s.redis()
        self._rule = s.deadline_rule()
        self.store = PostgresStore(self._pool, s.projector_state_cache_size)
        self.read_model = RedisReadModel(
            DocumentWriter(
                self._redis,
                s.killed_tombstone_ttl_seconds,
                s.change_feed_max_length,
                s.redis_layout(),
            ),
            self._rule,
        )
        self.snapshots = KafkaStateSnapshots(broker.connection)
        projection = Projection(
            self.store, self.read_model, Outbox(broker), self._rule, self.snapshots
        )
        self.pipeline = Pipeline(
            self.store, projection, RetryingProjection(projection, self.problems)
        )
        self._guard: asyncio.Task[None] | None = None
        self._history: asyncio.Task[None] | None = None
        self._lag = LagMonitor(
            broker.connection,
            s.projector_group_id,
            topics.LIFECYCLE,
            s.consumer_lag_interval_seconds,
        )

    async def start(self) -> None:
        await self._pool.open()
        await self._lag.start()
        log.info("projector stores opened")
        if self._settings.read_model_check_seconds > 0:
            self._guard = asyncio.create_task(self._guard_read_model(), name="read-model-guard")
        self._history = asyncio.create_task(self._keep_history(), name="history-partitions")

    async def _keep_history(self) -> None:
        """The history's partitions made ahead, and those past HISTORY_RETENTION_DAYS dropped."""
        while True:
            try:
                async with self._pool.acquire() as conn:
                    done = await maintain(
                        conn, datetime.now(UTC), self._settings.history_retention_days
                    )
                if done is not None and (done.created or done.dropped or done.purged):
                    log.info(
                        "history partitions: created %s, dropped %s, %d facts before %s deleted"
                        " from the default partition",
                        ", ".join(done.created) or "none",
                        ", ".join(done.dropped) or "none",
                        done.purged,
                        done.since.isoformat() if done.since else "-",
                    )
            except Exception:  # logged; the next round tries again (nothing is refused meanwhile)
                log.exception("keeping the history's partitions failed")
            await asyncio.sleep(HISTORY_UPKEEP_SECONDS)

    async def _guard_read_model(self) -> None:
        """Redis lost the read model (flushed, a new instance, a failover): rebuild it from
        PostgreSQL; and Redis's memory against its limit, for the metrics and alerts."""
        s = self._settings
        snapshots = pool_snapshots(self._pool)
        shadow = ShadowWriter(self._redis, s.killed_tombstone_ttl_seconds, s.redis_layout())
        reader = ReadModelReader(self._redis, s.redis_layout())
        warned = False
        while True:
            try:
                await rebuild_if_missing(snapshots, shadow, reader, self._rule, by="projector")
            except Exception:  # logged; the next check tries again
                log.exception("rebuilding the Redis read model from PostgreSQL failed")
            warned = await observe_memory(reader, warned)
            await asyncio.sleep(s.read_model_check_seconds)

    async def close(self) -> None:
        await self._lag.stop()
        await cancel_and_wait(self._guard)
        await cancel_and_wait(self._history)
        await self.snapshots.close()
        await self._redis.aclose()
        await self._pool.close()

    async def problems(self) -> list[str]:
        return await failing(
            self._broker, {"postgres": self.store.ping, "redis": self.read_model.ping}
        )
