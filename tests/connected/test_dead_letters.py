"""A poison record goes to the dead-letter topic with its reason; its partition moves on."""

from __future__ import annotations

import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from sandbox_common import topics
from tests.connected.conftest import Stack
from tests.connected.helpers import (
    end_offsets,
    eventually,
    find_record,
    post_webhook,
    status_of,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected


async def test_poison_record_is_dead_lettered_and_the_partition_moves_on(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    sandbox, project = unique("sbx"), unique("proj")
    marker = f"poison-{uuid.uuid4()}".encode()
    dlq_start = await end_offsets(stack.infra.kafka, topics.LIFECYCLE_DLQ)
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
    dead = await eventually(lambda: find_record(stack.infra.kafka, dlq_start, marker))
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["dlq-original-topic"] == topics.LIFECYCLE
    assert int(headers["dlq-original-offset"]) >= 0
    assert "not a sandbox-lifecycle envelope" in headers["dlq-reason"]
