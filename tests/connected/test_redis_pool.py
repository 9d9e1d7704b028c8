"""The bounded Redis pool (status-api, ingest) against the real Redis: a burst larger than the
pool waits for free connections instead of failing, and failures never leak a slot."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from sandbox_common.redis_pool import BoundedConnectionPool
from tests.connected import redis_mode
from tests.connected.conftest import Infra

pytestmark = pytest.mark.connected


async def test_a_burst_larger_than_the_pool_waits_instead_of_failing(prepared: Infra) -> None:
    """On one Redis and on a cluster (REDIS_CLUSTER=true) alike."""
    client = redis_mode.client(prepared.redis_url, max_connections=2)
    plain = redis_mode.unbounded(prepared.redis_url, max_connections=2)
    try:
        started = time.monotonic()
        # Each BLPOP holds its connection for 0.2 s: six of them need three rounds of two.
        answers = await asyncio.gather(*(client.blpop(["no-such-list"], 0.2) for _ in range(6)))
        assert answers == [None] * 6
        assert time.monotonic() - started >= 0.55
        with pytest.raises(RedisConnectionError):  # "Too many connections" (a cluster's too)
            await asyncio.gather(*(plain.blpop(["no-such-list"], 0.2) for _ in range(6)))
    finally:
        await client.aclose()
        await plain.aclose()


async def test_failed_connects_give_their_slot_back() -> None:
    pool = BoundedConnectionPool.from_url("redis://127.0.0.1:1/0", max_connections=1)
    client = aioredis.Redis(connection_pool=pool)
    try:
        for _ in range(3):
            with pytest.raises(RedisConnectionError):
                await client.ping()
        assert pool._slots._value == 1  # neither leaked nor given back twice
    finally:
        await client.aclose()
