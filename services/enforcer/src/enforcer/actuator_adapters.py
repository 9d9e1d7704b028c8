"""The actuator's I/O toward Redis and Kafka; nothing else in the enforcer knows these clients."""

from __future__ import annotations

import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from sandbox_common import dead_letters, envelope, keys, topics
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import StatusDoc, decode_doc


class RedisStatusReader:
    """The projector's status document: the freshest view of activity the actuator can get."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def status_of(self, sandbox_id: str) -> StatusDoc | None:
        raw: bytes | str | None = await self._client.hget(
            keys.sandbox_doc(sandbox_id), keys.DOC_FIELD
        )
        return None if raw is None else decode_doc(raw)

    async def ping(self) -> None:
        await self._client.ping()


class KafkaFacts:
    """Facts to `sandbox-lifecycle`, keyed by sandbox; returns once the broker acknowledged."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, fact: Envelope) -> None:
        await self._broker.publish(
            envelope.encode(fact),
            topic=topics.LIFECYCLE,
            key=topics.record_key(fact.sandbox_id),
            headers={k: v.decode() for k, v in envelope.kafka_headers(fact)},
        )


class KafkaDeadLetters:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def send(self, record: Record, reason: str) -> None:
        await self._broker.publish(
            record.value or b"",
            topic=topics.LIFECYCLE_DLQ,
            headers=dead_letters.headers(record, reason),
        )


class RedisCommandLedger:
    """Commands the actuator carried out, remembered for a week (far beyond any redelivery)."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self._client = client
        self._ttl = ttl_seconds

    async def done(self, command_id: str) -> bool:
        return bool(await self._client.exists(keys.command_done(command_id)))

    async def remember(self, command_id: str) -> None:
        await self._client.set(keys.command_done(command_id), b"1", ex=self._ttl)
