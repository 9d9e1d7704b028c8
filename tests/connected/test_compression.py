"""Issue 15, item 4: every producer compresses its batches with zstd. Checked on the wire: a
consumer reads the batches back and each one's attribute says which codec wrote it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.record.memory_records import MemoryRecords

from sandbox_common import envelope as env
from sandbox_common import topics
from sandbox_common.broker import build_broker
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_publisher import KafkaPublisher
from tests.connected.conftest import Infra
from tests.connected.replay_support import create_topic, delete_topic

pytestmark = pytest.mark.connected

ZSTD = 4  # the record batch attribute's codec bits (Kafka protocol)


class _Recorded:
    """MemoryRecords as the fetcher uses it, noting each batch's codec."""

    seen: list[int] = []  # noqa: RUF012 - shared by every instance: one fetch stream per test

    def __init__(self, raw: bytes) -> None:
        self._records = MemoryRecords(raw)

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is not None:
            _Recorded.seen.append(batch.compression_type)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)


@pytest.fixture
def codecs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    _Recorded.seen = []
    monkeypatch.setattr(fetcher, "MemoryRecords", _Recorded)
    return _Recorded.seen


@pytest.fixture
async def topic(infra: Infra) -> AsyncIterator[str]:
    name = f"compression-test-{uuid.uuid4().hex[:8]}"
    await create_topic(infra.kafka, name, partitions=1)
    try:
        yield name
    finally:
        await delete_topic(infra.kafka, name)


async def _read_all(bootstrap: str, topic: str, count: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = 0
        while got < count:
            fetched = await consumer.getmany(timeout_ms=5000)
            if not fetched:
                break
            got += sum(len(rs) for rs in fetched.values())
        return got
    finally:
        await consumer.stop()


def activity_fact(sandbox_id: str = "zstd-test") -> bytes:
    """One encoded activity fact (the smallest real record a service publishes)."""
    now = datetime.now(UTC)
    return env.encode(
        env.Envelope(
            event_id=str(uuid.uuid4()),
            type=env.FactType.ACTIVITY,
            source=env.Source.UI,
            sandbox_id=sandbox_id,
            occurred_at=now,
            received_at=now,
        )
    )


async def test_the_fact_publisher_writes_zstd_batches(
    infra: Infra, topic: str, codecs: list[int]
) -> None:
    publisher = KafkaPublisher(KafkaConnection(infra.kafka), 10)
    await publisher.start()
    try:
        for _ in range(3):
            await publisher._send(topic, activity_fact(), "zstd-test", [])
    finally:
        await publisher.stop()
    assert await _read_all(infra.kafka, topic, 3) == 3
    assert codecs, "no batch was fetched"
    assert set(codecs) == {ZSTD}, codecs


@pytest.mark.parametrize("durable", [True, False])
async def test_the_services_brokers_write_zstd_batches(
    infra: Infra, topic: str, codecs: list[int], durable: bool
) -> None:
    broker = build_broker(KafkaConnection(infra.kafka), logging.getLogger("test"), durable=durable)
    await broker.start()
    try:
        for _ in range(3):
            await broker.publish(activity_fact(), topic=topic, key=topics.record_key("zstd-test"))
    finally:
        await broker.stop()
    assert await _read_all(infra.kafka, topic, 3) == 3
    assert codecs, "no batch was fetched"
    assert set(codecs) == {ZSTD}, codecs
