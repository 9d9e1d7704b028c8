"""Redis clients for the services, built one way: a bounded pool whose commands are retried on a
fresh connection when theirs was dropped.

redis-py retries a command only if the pool says so, and a pool made by `from_url` says nothing
(0 retries; only a pool that `Redis(host=...)` builds itself gets 3). After a Redis restart
every pooled connection is dead, and each then failed the next command it carried: in
status-api's fast lane a bare 500 (found by the fault suite, tests/faults). One immediate retry
on a fresh connection fixes a dead one; a Redis that is really down costs one more refused
connect, not a backoff (with a backoff, every request of ingest waited for it during a Redis
outage). Only dropped connections are retried (not timeouts), and every command the services
send is safe to repeat (revision-guarded scripts, SET, ZADD, reads).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def _retry() -> Retry:
    return Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))


def redis_client(url: str, max_connections: int, *, blocking: bool = True) -> aioredis.Redis:
    """`blocking`: wait up to 5 s for a free connection instead of failing when all are busy."""
    if blocking:
        pool: aioredis.ConnectionPool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=5, retry=_retry()
        )
    else:
        pool = aioredis.ConnectionPool.from_url(
            url, max_connections=max_connections, retry=_retry()
        )
    return aioredis.Redis(connection_pool=pool)
