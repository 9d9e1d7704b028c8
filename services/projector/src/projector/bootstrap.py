"""Composition root: builds the pools and adapters once, from settings, at start-up."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from projector.adapters.dead_letters import KafkaDeadLetters
from projector.adapters.postgres import PostgresStore
from projector.adapters.redis import RedisReadModel
from projector.rebuild import ReadModelGuard
from sandbox_common import redis_pool
from sandbox_common.settings import Settings

log = logging.getLogger(__name__)
# How often the projector checks that Redis still holds the whole read model (one GET).
READ_MODEL_CHECK_SECONDS = 2.0


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
        self._guard: ReadModelGuard | None = None

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
        self._store = PostgresStore(self._pool)
        self._read_model = RedisReadModel(
            self._redis,
            s.killed_tombstone_ttl_seconds,
            s.idle_timeout_seconds,
            s.change_feed_max_length,
        )
        self._guard = ReadModelGuard(
            self._store,
            self._read_model,
            self._read_model,
            timedelta(seconds=s.killed_tombstone_ttl_seconds),
            READ_MODEL_CHECK_SECONDS,
        )
        await self._guard.start()
        log.info("projector stores opened")

    async def close(self) -> None:
        if self._guard is not None:
            await self._guard.stop()
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
