"""Which Redis the connected tier runs against: one server (the default; the tests use database
15, apart from what `make up` serves on 0) or a Redis Cluster (REDIS_CLUSTER=true, as
`make test REDIS_MODE=cluster` sets it; a cluster has database 0 only, so the tests run on a
cluster of their own, TEST_REDIS_URL). Every test reaches Redis through `client`, as the
services do through their settings."""

from __future__ import annotations

import os
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from sandbox_common import redis_pool

CLUSTER = os.environ.get("REDIS_CLUSTER", "").strip().lower() in {"1", "true", "yes", "on"}


def client(url: str, max_connections: int = 64) -> aioredis.Redis:
    return redis_pool.redis_client(url, max_connections, cluster=CLUSTER)


def unbounded(url: str, max_connections: int) -> aioredis.Redis:
    """redis-py's own client, which fails a burst past `max_connections` (the services' waits)."""
    if CLUSTER:
        return cast(aioredis.Redis, RedisCluster.from_url(url, max_connections=max_connections))
    return aioredis.Redis.from_url(url, max_connections=max_connections)
