"""The ticker's I/O: the idle-deadline index and status documents in Redis, a lease so that one
replica ticks at a time, and pause requests to Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from sandbox_common import commands, envelope, keys, topics
from sandbox_common.commands import Command
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import StatusDoc, decode_doc

LEASE_KEY = keys.TICKER_LEASE
# Take the lease if free, or extend it if it is already ours; never take another's.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRequestedPauses:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds

    async def already(self, command_ids: Sequence[str]) -> set[str]:
        found = await self._client.mget([keys.pause_requested(c) for c in command_ids])
        return {c for c, hit in zip(command_ids, found, strict=True) if hit is not None}

    async def remember(self, command_id: str) -> None:
        await self._client.set(keys.pause_requested(command_id), b"1", ex=self._ttl)


class RedisDeadlineIndex:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Only the due part of the index: cost grows with the number due, not the fleet."""
        members = await self._client.zrangebyscore(
            keys.IDLE_DEADLINES, "-inf", now.timestamp(), start=0, num=limit
        )
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


class RedisTransitionalIndex:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def entered_before(self, cutoff: datetime, limit: int) -> list[str]:
        members = await self._client.zrangebyscore(
            keys.TRANSITIONAL, "-inf", cutoff.timestamp(), start=0, num=limit
        )
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


class RedisStatusDocs:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def get_many(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]:
        if not sandbox_ids:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for sandbox_id in sandbox_ids:
                pipe.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
            raws = await pipe.execute()
        return {sid: decode_doc(raw) for sid, raw in zip(sandbox_ids, raws, strict=True) if raw}


class RedisLease:
    """One ticking replica at a time; the holder extends its lease at every tick."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int, key: str = LEASE_KEY) -> None:
        self.owner = f"enforcer-{uuid.uuid4().hex[:12]}"
        self._key = key
        self._ttl_ms = ttl_seconds * 1000
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    async def hold(self) -> bool:
        return bool(await self._hold(keys=[self._key], args=[self.owner, self._ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self._key], args=[self.owner])


class KafkaPausePublisher:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish_fact(self, fact: Envelope) -> None:
        await self._broker.publish(
            envelope.encode(fact),
            topic=topics.LIFECYCLE,
            key=topics.record_key(fact.sandbox_id),
            headers={k: v.decode() for k, v in envelope.kafka_headers(fact)},
        )

    async def request_pause(self, command: Command, fact: Envelope) -> None:
        await self._broker.publish(
            commands.encode(command),
            topic=topics.COMMANDS,
            key=topics.record_key(command.sandbox_id),
            headers={"command-id": command.command_id},
        )
        await self.publish_fact(fact)
