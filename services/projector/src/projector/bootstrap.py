"""Composition root of the projector: pools, adapters and use cases, built once from settings
(no I/O: the PostgreSQL pool is opened on start, Redis connects on first use)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis

from projector.adapters.history_partitions import maintain
from projector.adapters.kafka_state import KafkaStateSnapshots
from projector.adapters.policy_rows import RunningRows, StoredPolicies, policy_changes
from projector.adapters.postgres import Pool, PostgresStore
from projector.adapters.postgres_snapshot import pool_snapshots
from projector.adapters.redis import RedisReadModel
from projector.handlers import Projection
from projector.notifications.delivery import Claimed, Deliverer
from projector.notifications.outbox_rows import OutboxRows
from projector.notifications.sender import HttpSender
from projector.pipeline import Pipeline
from projector.policy_apply import PolicyKeeper, Reindex
from projector.read_model_rebuild import observe_memory, rebuild_if_missing
from projector.retries import RetryingProjection
from projector.settings import ProjectorSettings
from sandbox_common import topics
from sandbox_common.broker import (
    BrokerDeadLetters,
    BrokerDeadNotices,
    BrokerFacts,
    PatientKafkaBroker,
)
from sandbox_common.consumer_lag import LagMonitor
from sandbox_common.postgres_pool import PostgresPool
from sandbox_common.probes import failing
from sandbox_common.readmodel.policies import PolicyWriter
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


@dataclass(frozen=True)
class DeadNotices:
    """The deliverer's dead letters, on the broker."""

    broker: BrokerDeadNotices

    async def send(self, item: Claimed, reason: str) -> None:
        await self.broker.publish_dead(
            item.project_id, item.delivery_id, item.event, item.body, reason
        )


class ProjectorParts:
    def __init__(self, settings: ProjectorSettings, broker: PatientKafkaBroker) -> None:
        s = self._settings = settings
        self._broker = broker
        self._pool = PostgresPool(s.database_url, min_size=1, max_size=4)
        self._redis: aioredis.Redis = s.redis()
        self._rule = s.deadline_rule()
        self.store = PostgresStore(self._pool, s.projector_state_cache_size)
        self.policies = policy_keeper(s, self._pool, self._redis)
        self.read_model = RedisReadModel(
            document_writer(s, self._redis), self._rule, self.policies.current
        )
        self.snapshots = KafkaStateSnapshots(broker.connection)
        projection = Projection(
            self.store,
            self.read_model,
            Outbox(broker),
            self._rule,
            self.snapshots,
            self.policies,
        )
        self.pipeline = Pipeline(
            self.store, projection, RetryingProjection(projection, self.problems)
        )
        self._guard: asyncio.Task[None] | None = None
        self._history: asyncio.Task[None] | None = None
        self._sender = HttpSender(s.reach(), s.notify_timeout_seconds)
        self._deliverer = Deliverer(
            OutboxRows(self._pool),
            self._sender,
            DeadNotices(BrokerDeadNotices(broker)),
            s.notify_max_attempts,
            s.notify_backoff_cap_seconds,
            s.notify_timeout_seconds,
        )
        self._delivering: asyncio.Task[None] | None = None
        self._follow: asyncio.Task[None] | None = None
        self._lag = LagMonitor(
            broker.connection,
            s.projector_group_id,
            topics.LIFECYCLE,
            s.consumer_lag_interval_seconds,
        )

    async def start(self) -> None:
        await self._pool.open()
        await self._lag.start()
        # Before the first batch: every document is written with the policies in force.
        await self.policies.load()
        self._follow = asyncio.create_task(self._follow_policies(), name="policy-reloads")
        log.info("projector stores opened")
        if self._settings.read_model_check_seconds > 0:
            self._guard = asyncio.create_task(self._guard_read_model(), name="read-model-guard")
        self._history = asyncio.create_task(self._keep_history(), name="history-partitions")
        self._delivering = asyncio.create_task(self._deliverer.run(), name="notifications")

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

    async def _follow_policies(self) -> None:
        """Reloads the policies when PostgreSQL says they changed, and every
        POLICY_RELOAD_SECONDS in case a notice was missed (a lost connection reconnects)."""
        every = self._settings.policy_reload_seconds
        while True:
            try:
                async with policy_changes(self._settings.database_url) as listening:
                    trigger = "listen"  # changes made while nobody listened
                    while not listening.lost:
                        await self.policies.refresh(trigger)
                        try:
                            async with asyncio.timeout(every):
                                await listening.changed.wait()
                            trigger = "notify"
                        except TimeoutError:
                            trigger = "periodic"
                        listening.changed.clear()
            except Exception:  # logged; listening again shortly, reloading meanwhile
                log.warning("following policy changes failed; listening again", exc_info=True)
            await asyncio.sleep(min(every, 5.0))

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
        await cancel_and_wait(self._follow)
        await cancel_and_wait(self._delivering)
        await self._sender.close()
        await self.policies.close()
        await self.snapshots.close()
        await self._redis.aclose()
        await self._pool.close()

    async def problems(self) -> list[str]:
        return await failing(
            self._broker, {"postgres": self.store.ping, "redis": self.read_model.ping}
        )


def document_writer(s: ProjectorSettings, redis: aioredis.Redis) -> DocumentWriter:
    return DocumentWriter(
        redis, s.killed_tombstone_ttl_seconds, s.change_feed_max_length, s.redis_layout()
    )


def policy_keeper(s: ProjectorSettings, pool: Pool, redis: aioredis.Redis) -> PolicyKeeper:
    """The policies in force (from PostgreSQL, into Redis) and their re-indexes."""
    keeper = PolicyKeeper(
        StoredPolicies(pool),
        PolicyWriter(redis),
        second_pass_seconds=s.policy_reindex_second_pass_seconds,
    )
    keeper.reindex = Reindex(
        RunningRows(pool),
        ReadModelReader(redis, s.redis_layout()),
        document_writer(s, redis),
        s.deadline_rule(),
        keeper.current,
    )
    return keeper
