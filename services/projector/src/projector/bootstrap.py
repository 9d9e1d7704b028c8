"""Composition root: builds the pools and adapters once, from settings, at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from projector.adapters.dead_letters import KafkaDeadLetters
from projector.adapters.postgres import PostgresStore
from projector.adapters.redis import RedisReadModel
from projector.replay.rebuild_redis import rebuild_if_empty
from sandbox_common import redis_pool
from sandbox_common.settings import Settings

log = logging.getLogger(__name__)


class Resources:
    """Everything the subscriber needs; opened in the app's startup hook, never at import."""

    def __init__(self, settings: Settings, broker: KafkaBroker) -> None:
        self._settings = settings
        self._broker = broker
        self.dead_letters = KafkaDeadLetters(broker)
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._redis: aioredis.Redis | None = None
        self._store: PostgresStore | None = None
        self._read_model: RedisReadModel | None = None
        self._guard: asyncio.Task[None] | None = None

    @property
    def store(self) -> PostgresStore:
        assert self._store is not None, "resources not opened"
        return self._store

    @property
    def read_model(self) -> RedisReadModel:
        assert self._read_model is not None, "resources not opened"
        return self._read_model

    async def open(self) -> None:
        s = self._settings
        self._pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=4)
        self._redis = redis_pool.redis_client(s.redis_url, s.redis_max_connections)
        self._store = PostgresStore(self._pool, s.projector_state_cache_size)
        self._read_model = RedisReadModel(
            self._redis,
            s.killed_tombstone_ttl_seconds,
            s.idle_timeout_seconds,
            s.change_feed_max_length,
        )
        log.info("projector stores opened")
        if s.read_model_check_seconds > 0:
            self._guard = asyncio.create_task(self._guard_read_model(), name="read-model-guard")

    async def _guard_read_model(self) -> None:
        """Redis lost the read model (flushed, a new instance): rebuild it from PostgreSQL."""
        assert self._pool is not None
        assert self._redis is not None
        s = self._settings
        while True:
            try:
                await rebuild_if_empty(
                    self._pool,
                    self._redis,
                    tombstone_ttl_seconds=s.killed_tombstone_ttl_seconds,
                    default_idle_seconds=s.idle_timeout_seconds,
                    by="projector",
                )
            except Exception:  # logged; the next check tries again
                log.exception("rebuilding the Redis read model from PostgreSQL failed")
            await asyncio.sleep(s.read_model_check_seconds)

    async def close(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._guard
        if self._redis is not None:
            await self._redis.aclose()
        if self._pool is not None:
            await self._pool.close()

    async def problems(self) -> list[str]:
        found = []
        if not await self._broker.ping(timeout=2.0):
            found.append("kafka: broker not reachable")
        for name, check in (("postgres", self.store.ping), ("redis", self.read_model.ping)):
            try:
                await check()
            except Exception as exc:  # readiness reports any failure, whatever its type
                found.append(f"{name}: {exc.__class__.__name__}: {exc}")
        return found
