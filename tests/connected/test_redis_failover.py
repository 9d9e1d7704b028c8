"""Issue 15, item 2: a promoted replica that lost its primary's last writes but kept the
completeness marker used to serve stale states for ever. The projector's guard sees that the
marker was written on another Redis and rebuilds the model from PostgreSQL. Runs on a primary
and a replica of its own (real redis-server replication, then a promotion)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis

from projector.adapters.postgres import PostgresStore
from projector.adapters.postgres_snapshot import pool_snapshots
from projector.adapters.redis import RedisReadModel
from projector.handlers import Projection, project_batch
from projector.read_model_rebuild import rebuild_if_missing
from sandbox_common.envelope import FactType
from sandbox_common.postgres_pool import PostgresPool
from sandbox_common.readmodel import DeadlineRule, Status
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.shadow import ShadowWriter
from sandbox_common.readmodel.writer import DocumentWriter
from tests.connected.own_redis import own_redis
from tests.connected.replay_support import (
    NoOutbox,
    ReplayStore,
    lifecycle_records,
)

pytestmark = pytest.mark.connected


async def _guard(pool: PostgresPool, client: aioredis.Redis, rule: DeadlineRule) -> bool:
    """One pass of the projector's read-model guard against `client`."""
    return await rebuild_if_missing(
        pool_snapshots(pool),
        ShadowWriter(client, 3600),
        ReadModelReader(client),
        rule,
        by="projector",
    )


async def _synced(primary: aioredis.Redis, replica: aioredis.Redis) -> None:
    for _ in range(200):
        p = await primary.info("replication")
        r = await replica.info("replication")
        if r.get("master_link_status") == "up" and r.get("slave_repl_offset") == p.get(
            "master_repl_offset"
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the replica did not catch up with its primary")


async def test_a_promoted_replica_that_lost_writes_is_rebuilt_from_postgresql(
    store: ReplayStore,
) -> None:
    s = store.settings
    rule = s.deadline_rule()
    now = datetime.now(UTC)
    ids = [f"fo-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    async with own_redis("--repl-diskless-sync-delay", "0") as primary_url:
        at = urlparse(primary_url)
        async with own_redis("--replicaof", str(at.hostname), str(at.port)) as replica_url:
            primary = aioredis.Redis.from_url(primary_url)
            replica = aioredis.Redis.from_url(replica_url)
            pool = PostgresPool(s.database_url, min_size=1, max_size=3)
            try:
                writer = DocumentWriter(primary, 3600, 1000)
                projection = Projection(
                    PostgresStore(pool), RedisReadModel(writer, rule), NoOutbox(), rule
                )
                await project_batch(lifecycle_records(FactType.CREATED, ids, 0, now), projection)
                assert await _guard(pool, primary, rule)  # first start: no marker yet
                assert not await _guard(pool, primary, rule)  # complete, same Redis
                await _synced(primary, replica)

                # The failover: the replica is promoted, and the primary's last writes (every
                # sandbox paused) never reached it.
                await replica.replicaof("NO", "ONE")
                paused_at = now + timedelta(seconds=5)
                await project_batch(
                    lifecycle_records(FactType.PAUSED, ids, 30, paused_at), projection
                )

                promoted = ReadModelReader(replica)
                assert await promoted.is_complete()  # the marker survived the promotion
                assert await _guard(pool, replica, rule), "a promoted replica was not rebuilt"
                docs = await promoted.by_id(ids)
                stale = [sid for sid in ids if docs[sid].status is not Status.PAUSED]
                assert stale == [], f"{len(stale)} stale documents served after the failover"
                assert not await _guard(pool, replica, rule)  # and only once
            finally:
                await pool.close()
                await primary.aclose()
                await replica.aclose()
