"""Many records at once through aiokafka's producer, gathered per partition into the
producer's own batches (`BatchBuilder`, `send_batch`): one future per batch, where `send`
makes one per record and resolves each, which was a third of a tick's publishing (10,000 pause
commands and their facts). Partitioned as `send` partitions a keyed record (murmur2 of the
key, as Kafka's default partitioner), so a sandbox's records keep to one partition."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

# (topic, value, key, headers)
Wire = tuple[str, bytes, bytes, list[tuple[str, bytes]]]
_partition = DefaultPartitioner()


class Batches:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        # Each batch handed over, with the indexes of its records.
        self.sent: list[tuple[asyncio.Future[Any], list[int]]] = []

    async def add(self, index: int, record: Wire) -> None:
        topic, value, key, headers = record
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = partitions
        where = (topic, int(_partition(key, partitions, partitions)))
        batch, indexes = self._open.get(where) or self._opened(where)
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            await self._hand_over(where)  # full: the next one takes the record
            batch, indexes = self._opened(where)
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value)} bytes exceeds the batch size")
        indexes.append(index)

    async def flush(self) -> None:
        for where in list(self._open):
            await self._hand_over(where)

    def _opened(self, where: tuple[str, int]) -> tuple[Any, list[int]]:
        opened: tuple[Any, list[int]] = (self._producer.create_batch(), [])
        self._open[where] = opened
        return opened

    async def _hand_over(self, where: tuple[str, int]) -> None:
        batch, indexes = self._open.pop(where)
        delivery = await self._producer.send_batch(batch, where[0], partition=where[1])
        self.sent.append((delivery, indexes))


async def send_all(
    producer: AIOKafkaProducer, records: list[Wire], timeout_seconds: float
) -> list[BaseException | None]:
    """Every record handed over, then every acknowledgement awaited together, within the
    timeout. Per record: None, or why it is not known to have landed."""
    batches = Batches(producer)
    failures: list[BaseException | None] = [None] * len(records)
    cut_short: BaseException | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            for index, record in enumerate(records):
                await batches.add(index, record)
            await batches.flush()
            if batches.sent:
                await asyncio.wait([delivery for delivery, _ in batches.sent])
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        cut_short = exc
        failures = [exc] * len(records)
    for delivery, indexes in batches.sent:
        failure = _failure(delivery, cut_short)
        for index in indexes:
            failures[index] = failure
    return failures


def _failure(
    delivery: asyncio.Future[Any], cut_short: BaseException | None
) -> BaseException | None:
    if not delivery.done():
        return cut_short or TimeoutError("not acknowledged")
    if delivery.cancelled():
        return asyncio.CancelledError()
    return delivery.exception()
