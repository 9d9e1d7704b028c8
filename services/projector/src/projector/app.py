"""FastStream entrypoint: a batch subscriber on `sandbox-lifecycle`, plus health, metrics and
the AsyncAPI document (/asyncapi)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from projector.adapters.kafka_offsets import ConsumerOffsets
from projector.bootstrap import ProjectorParts
from projector.pipeline import Offsets, Pipeline
from projector.settings import ProjectorSettings
from sandbox_common import topics
from sandbox_common.broker import build_broker, consumer_app, wire_schema
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope

log = logging.getLogger("projector")


@dataclass(frozen=True)
class Fetched:
    raw: Sequence[ConsumerRecord[Any, Any]]
    # The aiokafka consumer that fetched them: their offsets are committed through it.
    consumer: Any


async def fetched(msg: StreamMessage[Any]) -> Fetched:
    """The handler decodes envelopes itself from the raw records: FastStream's per-record JSON
    decoding is skipped (a tenth of the projector's CPU)."""
    raw = msg.raw_message
    return Fetched(raw if isinstance(raw, tuple | list) else (raw,), getattr(msg, "consumer", None))


class SubscriberOffsets(Offsets, Protocol):
    async def flush(self) -> None: ...


class BatchSubscriber:
    """A fetched batch -> the pipeline, with the offsets of the consumer that fetched it (one
    `SubscriberOffsets` per consumer, so commits stay in order)."""

    def __init__(
        self,
        pipeline: Pipeline,
        offsets_of: Callable[[Any], SubscriberOffsets] = ConsumerOffsets,
    ) -> None:
        self._pipeline = pipeline
        self._offsets_of = offsets_of
        self._consumer: Any = None
        self._offsets: SubscriberOffsets | None = None

    async def __call__(self, batch: Annotated[Fetched, wire_schema(Envelope)]) -> None:
        records = [
            Record(r.topic, r.partition, r.offset, r.value, r.key, tuple(r.headers))
            for r in batch.raw
        ]
        if self._offsets is None or self._consumer is not batch.consumer:
            self._consumer = batch.consumer
            self._offsets = self._offsets_of(batch.consumer)
        await self._pipeline.submit(records, self._offsets)

    async def drain(self) -> None:
        """The batch in flight gets written and its offsets committed (on shutdown)."""
        await self._pipeline.drain()
        if self._offsets is not None:
            await self._offsets.flush()


def subscribe(
    broker: KafkaBroker, subscriber: BatchSubscriber, settings: ProjectorSettings
) -> None:
    broker.subscriber(
        topics.LIFECYCLE,
        group_id=settings.projector_group_id,
        batch=True,
        max_records=settings.projector_batch_size,
        batch_timeout_ms=50,
        # Fetches large enough that the next batch is in memory when the pipeline asks for it:
        # with aiokafka's 1 MB per partition, a backlog was folded batch by batch only as fast
        # as fetches came in, and the pipeline idled between them (from 20,000 to 24,000 facts/s
        # and more at 5,000 records a batch, bench/projector_throughput.py). Bounded in memory by
        # `fetch_max_bytes` per fetch.
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        # Without a backlog, a fetch that returned whatever was there gave batches of about
        # ten facts at 3,000 webhooks/s, each its own transaction: the broker now waits up to
        # 10 ms for 64 KiB. At 3,000 webhooks/s that cut the projector's CPU per webhook from 125
        # to 77 us, PostgreSQL's from 84 to 54 and Kafka's from 70 to 54; freshness at 1,000/s
        # did not move (p50 12 ms, p99 39 ms).
        fetch_min_bytes=64 * 1024,
        fetch_max_wait_ms=10,
        auto_offset_reset="earliest",
        # The pipeline commits each batch's own offsets after both stores are written (the
        # consumer's position is already past the next batch), and rewinds on an error.
        ack_policy=AckPolicy.MANUAL,
        decoder=fetched,
        title="sandbox-lifecycle:project",
        description="Folds lifecycle facts into PostgreSQL (state, history) and the Redis read "
        "model; poison records go to sandbox-lifecycle.dlq with the reason.",
    )(subscriber.__call__)


def build_app(settings: ProjectorSettings) -> AsgiFastStream:
    # The handler takes what `fetched` decodes and nothing else. With dependency injection,
    # FastStream resolved the message argument in a worker thread, one hop per batch: with a
    # few dozen facts a batch at 1,000/s, a visible share of the projector's CPU.
    broker = build_broker(settings.kafka_connection(), log, durable=False, apply_types=False)
    parts = ProjectorParts(settings, broker)
    subscriber = BatchSubscriber(parts.pipeline)
    subscribe(broker, subscriber, settings)
    # On shutdown the batch in flight gets written and its offsets committed.
    return consumer_app(broker, parts, log, draining=[subscriber.drain])
