"""The actuator's I/O toward Redis and Kafka; nothing else in the enforcer knows these clients."""

from __future__ import annotations

import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from sandbox_common import dead_letters, envelope, keys, topics
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope
from sandbox_common.readmodel import StatusDoc, decode_doc


class ReadModelIncompleteError(RuntimeError):
    """Redis came back empty and the projector has not put the read model back yet: a missing
    document means nothing, so the command is retried rather than dropped."""


class RedisStatusReader:
    """The projector's status document: the freshest view of activity the actuator can get."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def status_of(self, sandbox_id: str) -> StatusDoc | None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
            pipe.exists(keys.READ_MODEL_MARKER)
            raw, complete = await pipe.execute()
        if raw is None and not complete:
            # Found by the fault suite: a pause in flight across a Redis restart was dropped as
            # "sandbox gone" and the sandbox stayed PAUSING until the stuck repair.
            raise ReadModelIncompleteError(f"no document for {sandbox_id} while Redis is rebuilt")
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
