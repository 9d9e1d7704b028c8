"""Redis clients for the services, built one way: a bounded pool that waits for a free
connection, cheaply, and retries a command on a fresh connection when its own was dropped.

Bounded: redis-py's plain pool raises "Too many connections" when a burst needs more than its
maximum (a thousand SSE clients opening at once did); its blocking pool waits, but takes a
condition, a lock and a timeout context on every command, which cost as much as a status read
itself. A semaphore taken around the plain pool's own get/release waits only when it is full.

Retried: redis-py retries a command only if the pool says so, and a pool made by `from_url`
says nothing. After a Redis restart every pooled connection is dead, and each then failed the
next command it carried: in status-api's fast lane a bare 500 (found by the fault suite,
tests/faults). One immediate retry on a fresh connection fixes a dead one; a Redis that is
really down costs one more refused connect, not a backoff (with a backoff, every request of
ingest waited for it during a Redis outage). Only dropped connections are retried (not
timeouts), and every command the services send is safe to repeat (revision-guarded scripts,
SET, ZADD, reads).

Redis Cluster (REDIS_CLUSTER=true): the same factory gives redis-py's cluster client, typed as
the plain one (it takes the same commands); the few places where the two differ are here
(scripts in a batch, per-node INFO). Every multi-key command and script the services send stays
in one slot (readmodel/keys.py), so the rest of the code does not know which it talks to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError


class BoundedConnectionPool(aioredis.ConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        await self._slots.acquire()
        try:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            # The plain pool already took the connection back (release() below saw no slot).
            self._slots.release()
            raise
        connection._holds_slot = True  # type: ignore[attr-defined]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            if getattr(connection, "_holds_slot", False):
                connection._holds_slot = False  # type: ignore[attr-defined]
                self._slots.release()


class _Cluster(RedisCluster):
    """redis-py's cluster client, initialised (the cluster's nodes and slots read) before its
    first command: left to the commands, concurrent first ones raced each other's connections
    (AttributeError on a connection another one had closed; found by the connected tier).

    `bound`: like BoundedConnectionPool, a burst waits for a free connection instead of
    failing: redis-py's cluster nodes raise MaxConnectionsError past their maximum. At most
    `bound` commands are out at once (each holds one connection of its node); the nodes allow
    twice as many, so pipelines (which bypass the bound) have room beside them."""

    def __init__(self, *args: Any, bound: int | None = None, **kwargs: Any) -> None:
        if bound is not None:
            kwargs["max_connections"] = 2 * bound
        super().__init__(*args, **kwargs)
        self._bound = asyncio.Semaphore(bound) if bound is not None else None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()  # under the client's own lock: once
        return await super().execute_command(*args, **kwargs)

    async def _execute_command(self, target_node: Any, *args: Any, **kwargs: Any) -> Any:
        if self._bound is None:
            return await super()._execute_command(target_node, *args, **kwargs)
        async with self._bound:
            return await super()._execute_command(target_node, *args, **kwargs)


def _retry() -> Retry:
    return Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))


def redis_client(
    url: str, max_connections: int, *, blocking: bool = True, cluster: bool = False
) -> aioredis.Redis:
    """`blocking`: wait for a free connection instead of failing when all are busy. `cluster`:
    a Redis Cluster client (the URL names any node; the others are discovered), bounded the
    same way when `blocking`."""
    if cluster:
        if blocking:
            client = _Cluster.from_url(url, bound=max_connections, retry=_retry())
        else:
            client = _Cluster.from_url(url, max_connections=max_connections, retry=_retry())
        return cast(aioredis.Redis, client)
    pool_class = BoundedConnectionPool if blocking else aioredis.ConnectionPool
    pool = pool_class.from_url(url, max_connections=max_connections, retry=_retry())
    return aioredis.Redis(connection_pool=pool)


def is_cluster(client: aioredis.Redis) -> bool:
    return isinstance(client, RedisCluster)


ScriptCall = tuple[Sequence[str], Sequence[Any]]


async def run_script(
    client: aioredis.Redis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Each call (keys, args) of one script, answers in order. On one Redis, pipelined (one
    round trip); on a cluster, concurrently, one command each: redis-py's cluster pipeline
    refuses EVALSHA, and each call goes to the node of its own slot anyway."""
    if not calls:
        return []
    if is_cluster(client):
        return await _by_slot(script, calls)
    async with client.pipeline(transaction=False) as pipe:
        for k, a in calls:
            await script(keys=k, args=a, client=pipe)
        return list(await pipe.execute())


async def _by_slot(script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """The calls of one slot one after the other, in their order (as a pipeline runs them: a
    later write of a shard lands after an earlier one), the slots at once."""
    by_slot: dict[int, list[int]] = {}
    for i, (names, _) in enumerate(calls):
        by_slot.setdefault(key_slot(str(names[0]).encode()), []).append(i)
    answers: list[Any] = [None] * len(calls)

    async def run(indexes: list[int]) -> None:
        for i in indexes:
            names, args = calls[i]
            answers[i] = await script(keys=names, args=args)

    await asyncio.gather(*(run(indexes) for indexes in by_slot.values()))
    return answers


async def get_many(client: aioredis.Redis, names: Sequence[str]) -> list[Any]:
    """GET of each key, in order: one MGET on one Redis; on a cluster, one per slot the keys
    fall in (MGET must not cross slots), sent to their nodes at once."""
    if is_cluster(client):
        return list(await cast(RedisCluster, client).mget_nonatomic(list(names)))
    return list(await client.mget(list(names)))


async def primaries_info(client: aioredis.Redis, section: str) -> list[dict[str, Any]]:
    """INFO `section` of every primary (one on a single Redis)."""
    if is_cluster(client):
        answers: dict[str, dict[str, Any]] = await client.info(
            section, target_nodes=RedisCluster.PRIMARIES
        )
        return list(answers.values())
    return [await client.info(section)]
