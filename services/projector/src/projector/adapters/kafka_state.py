"""The `sandbox-state` topic, written by the projector after each batch (see snapshots.py)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from projector.snapshots import Outgoing
from sandbox_common import topics
from sandbox_common.kafka_connection import KafkaConnection


class KafkaStateSnapshots:
    """One producer of its own (acks=all, idempotent: a key's records stay in order through
    retries), made and started on first use inside the running loop, like the PostgreSQL pool.
    A batch's records are sent without waiting for each; `write` returns once all of them are
    acknowledged, and then its watermarks."""

    def __init__(self, connection: KafkaConnection, topic: str = topics.STATE) -> None:
        self._connection = connection
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self._connection.client_kwargs(),
                    acks="all",
                    enable_idempotence=True,
                    compression_type=topics.COMPRESSION,
                    # A batch's records go out together anyway: gathered into big requests.
                    linger_ms=5,
                    max_batch_size=256 * 1024,
                    client_id="sandbox-projector-state",
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def write(self, batch: Outgoing) -> None:
        producer = await self._started()
        await self._send(producer, batch.states)
        # Only now: a watermark says the states below it are on the topic.
        await self._send(producer, batch.watermarks)

    async def _send(self, producer: AIOKafkaProducer, records: list[tuple[str, bytes]]) -> None:
        deliveries = [
            await producer.send(self._topic, value, key=topics.record_key(key))
            for key, value in records
        ]
        if deliveries:
            await asyncio.gather(*deliveries)
