"""Issue 15, item 1: a Redis that refuses writes (OOM at maxmemory with noeviction, READONLY
after a failover) is a store outage for the projector: the batch is retried and rewound, the
projector reports not ready, and no record is dead-lettered. Once Redis takes writes again the
same batch lands whole. Runs on a redis-server of its own (its settings are changed)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis

from projector.adapters.postgres import PostgresStore
from projector.adapters.redis import RedisReadModel
from projector.handlers import Projection
from projector.retries import RetryingProjection
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope, FactType
from sandbox_common.probes import failing
from sandbox_common.readmodel import Layout
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.writer import DocumentWriter
from tests.connected import redis_mode
from tests.connected.conftest import Infra
from tests.connected.own_redis import own_redis
from tests.connected.replay_support import ReplayStore, lifecycle_records

pytestmark = pytest.mark.connected


class _Broker:
    problem = None

    async def ping(self, timeout: float | None) -> bool:  # noqa: ASYNC109 - the Pingable signature
        return True


class _Outbox:
    def __init__(self) -> None:
        self.dead: list[tuple[Record, str]] = []

    async def send(self, record: Record, reason: str) -> None:
        self.dead.append((record, reason))

    async def publish(self, fact: Envelope) -> None:
        return None


def _records(n: int) -> tuple[list[str], list[Record]]:
    ids = [f"oom-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    return ids, lifecycle_records(FactType.CREATED, ids, 0, datetime.now(UTC))


async def _no_sleep(_: float) -> None:
    return None


Switch = Callable[[aioredis.Redis], Awaitable[object]]


async def _full(client: aioredis.Redis) -> None:
    await client.config_set("maxmemory", 1)


async def _not_full(client: aioredis.Redis) -> None:
    await client.config_set("maxmemory", 0)


async def _replica(client: aioredis.Redis) -> None:
    # A replica of a primary that is not there: what a demoted primary answers.
    await client.replicaof("127.0.0.1", 1)


async def _primary(client: aioredis.Redis) -> None:
    await client.replicaof("NO", "ONE")


@pytest.mark.parametrize(
    ("refuse", "allow"), [(_full, _not_full), (_replica, _primary)], ids=["oom", "readonly"]
)
async def test_a_redis_refusing_writes_rewinds_the_batch_and_dead_letters_nothing(
    store: ReplayStore, refuse: Switch, allow: Switch
) -> None:
    s = store.settings
    async with own_redis("--maxmemory-policy", "noeviction") as url:
        client = aioredis.Redis.from_url(url)
        pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=2)
        try:
            writer = DocumentWriter(client, s.killed_tombstone_ttl_seconds, 1000)
            read_model = RedisReadModel(writer, s.deadline_rule())
            outbox = _Outbox()
            pg = PostgresStore(pool)
            projection = Projection(pg, read_model, outbox, s.deadline_rule())

            async def problems() -> list[str]:
                return await failing(_Broker(), {"postgres": pg.ping, "redis": read_model.ping})

            retrying = RetryingProjection(projection, problems, sleep=_no_sleep)
            ids, records = _records(20)

            await refuse(client)
            with pytest.raises(Exception):  # noqa: B017,PT011 - whatever Redis raised, rewound
                await retrying.project(records)
            assert outbox.dead == [], "a store outage dead-lettered records"
            assert any(p.startswith("redis") for p in await problems()), "reported ready"

            await allow(client)
            await retrying.project(records)
            assert outbox.dead == []
            assert not await problems()
            for sid in ids:
                assert await client.exists(Layout().doc(sid)), sid
        finally:
            await pool.close()
            await client.aclose()


async def test_the_redis_make_up_starts_is_bounded_and_never_evicts(prepared: Infra) -> None:
    """`make up` (infra/local/redis.sh) sets a maxmemory with noeviction, and the projector's
    memory figures (redis_memory_* gauges, the alerts' input) say so."""
    client = redis_mode.client(prepared.redis_url)
    try:
        memory = await ReadModelReader(client).memory()
    finally:
        await client.aclose()
    assert memory.max_bytes > 0
    assert memory.policy == "noeviction"
    assert memory.bounded
    assert 0 < memory.used_bytes < memory.max_bytes
