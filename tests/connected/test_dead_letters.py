"""A poison record goes to the dead-letter topic with its reason; its partition moves on."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sandbox_common import topics
from tests.connected.conftest import Stack, topic_partitions
from tests.connected.helpers import (
    eventually,
    post_webhook,
    status_of,
    stop_quietly,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected


async def test_poison_record_is_dead_lettered_and_the_partition_moves_on(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    sandbox, project = unique("sbx"), unique("proj")
    marker = f"poison-{uuid.uuid4()}".encode()
    dlq_start = await _dlq_ends(stack.infra.kafka)
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka, acks="all")
    await producer.start()
    try:
        # Same key as the good webhook below, so both land in the same partition, poison first.
        await producer.send_and_wait(
            topics.LIFECYCLE, b"{not an envelope " + marker, key=topics.record_key(sandbox)
        )
    finally:
        await producer.stop()
    assert (
        await post_webhook(client, stack, webhook("created", sandbox, project))
    ).status_code == 200

    async def visible() -> bool:
        return (await status_of(client, stack, project)).status_code == 200

    await eventually(visible)
    dead = await eventually(lambda: _find_in_dlq(stack.infra.kafka, dlq_start, marker))
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["dlq-original-topic"] == topics.LIFECYCLE
    assert int(headers["dlq-original-offset"]) >= 0
    assert "not a sandbox-lifecycle envelope" in headers["dlq-reason"]


async def _dlq_ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topics.LIFECYCLE_DLQ)
        return dict(await consumer.end_offsets(tps))
    finally:
        await stop_quietly(consumer)


async def _find_in_dlq(bootstrap: str, since: dict[TopicPartition, int], marker: bytes) -> object:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        for _ in range(5):
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    if record.value and marker in record.value:
                        return record
            await asyncio.sleep(0)
        return None
    finally:
        await stop_quietly(consumer)
