"""Which Redis the connected tier runs against: one server (the default; the tests use database
15, apart from what `make up` serves on 0) or a Redis Cluster (REDIS_CLUSTER=true, as
`make test REDIS_MODE=cluster` sets it; a cluster has database 0 only, so the tests run on a
cluster of their own, TEST_REDIS_URL). Every test reaches Redis through `client`, as the
services do through their settings."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

from sandbox_common import redis_pool

CLUSTER = os.environ.get("REDIS_CLUSTER", "").strip().lower() in {"1", "true", "yes", "on"}


# Tests of the single server's connection pool (the cluster client keeps a pool per node).
single_server_only = pytest.mark.skipif(
    CLUSTER, reason="the single-server connection pool (a cluster client has one per node)"
)


def client(url: str) -> aioredis.Redis:
    return redis_pool.redis_client(url, 64, cluster=CLUSTER)
