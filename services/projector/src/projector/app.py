"""FastStream entrypoint: a batch subscriber on `sandbox-lifecycle` plus health and metrics."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from projector import metrics
from projector.adapters.kafka_offsets import ConsumerOffsets
from projector.bootstrap import Resources
from projector.handlers import BatchOutcome, Poison, project_batch
from projector.pipeline import Pipeline
from sandbox_common import topics
from sandbox_common.consumer_lag import LagMonitor
from sandbox_common.dead_letters import Record
from sandbox_common.probes import probe_routes
from sandbox_common.settings import Settings

log = logging.getLogger("projector")
_ATTEMPTS = 6
# A batch that keeps failing while the stores are healthy is retried record by record.
_SINGLE_ATTEMPTS = 2


def build_app(settings: Settings) -> AsgiFastStream:
    # Per-batch "Received/Processed" lines at DEBUG: at thousands of facts/s they would be noise.
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        logger=log,
        log_level=logging.DEBUG,
        # The handler takes what `_fetched` decodes and nothing else. With dependency injection,
        # FastStream resolved the message argument in a worker thread, one hop per batch: with a
        # few dozen facts a batch at 1,000/s, a visible share of the projector's CPU.
        apply_types=False,
    )
    resources = Resources(settings, broker)
    lag = LagMonitor(
        settings.kafka_bootstrap_servers,
        settings.projector_group_id,
        topics.LIFECYCLE,
        settings.consumer_lag_interval_seconds,
    )

    offsets: ConsumerOffsets | None = None  # one per consumer: commits stay in order

    @broker.subscriber(
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
        # The handler decodes envelopes itself from the raw records: skip FastStream's per-record
        # JSON decoding (a tenth of the projector's CPU).
        decoder=_fetched,
    )
    async def on_batch(fetched: _Fetched) -> None:
        records = [
            Record(r.topic, r.partition, r.offset, r.value, r.key, tuple(r.headers))
            for r in fetched.raw
        ]
        assert pipeline is not None, "started before the stores were opened"
        nonlocal offsets
        if offsets is None or offsets.consumer is not fetched.consumer:
            offsets = ConsumerOffsets(fetched.consumer)
        await pipeline.submit(records, offsets)

    pipeline: Pipeline | None = None

    async def start_pipeline() -> None:
        nonlocal pipeline
        pipeline = Pipeline(
            resources.store,
            resources.store,
            resources.read_model,
            resources.dead_letters,
            retry=lambda records: _project_with_retries(records, resources),
            observe=_observe,
        )

    async def drain() -> None:  # the batch in flight gets written and its offsets committed
        if pipeline is not None:
            await pipeline.drain()
        if offsets is not None:
            await offsets.flush()

    return AsgiFastStream(
        broker,
        asgi_routes=probe_routes(resources.problems),
        on_startup=[resources.open, start_pipeline, lag.start],
        on_shutdown=[drain],
        after_shutdown=[lag.stop, resources.close],
        logger=log,
    )


@dataclass(frozen=True)
class _Fetched:
    raw: tuple[ConsumerRecord[Any, Any], ...]
    consumer: AIOKafkaConsumer


async def _fetched(msg: StreamMessage[Any]) -> _Fetched:
    raw = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
    consumer = getattr(msg, "consumer", None)
    assert isinstance(consumer, AIOKafkaConsumer), "a Kafka batch carries its consumer"
    return _Fetched(raw, consumer)


async def _project_with_retries(records: Sequence[Record], resources: Resources) -> None:
    started = time.perf_counter()
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            outcome = await project_batch(
                records, resources.store, resources.read_model, resources.dead_letters
            )
            break
        except Exception:
            if attempt == _ATTEMPTS:
                if not await resources.problems():
                    # Both stores answer, yet the batch keeps failing: one of its records is
                    # poison to the stores. Isolate it, dead-letter it, let the partition move on.
                    outcome = await _one_by_one(records, resources)
                    break
                # Raising rewinds the partitions (NACK): the batch is retried, never skipped.
                log.exception("projection failed %d times; rewinding the batch", attempt)
                raise
            delay = min(10.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
            metrics.RETRIES.inc()
            log.warning(
                "projection failed (attempt %d), retrying in %.2fs", attempt, delay, exc_info=True
            )
            await asyncio.sleep(delay)
    _observe(outcome, records, time.perf_counter() - started)


async def _one_by_one(records: Sequence[Record], resources: Resources) -> BatchOutcome:
    total = BatchOutcome()
    for record in records:
        for attempt in range(1, _SINGLE_ATTEMPTS + 1):
            try:
                one = await project_batch(
                    [record], resources.store, resources.read_model, resources.dead_letters
                )
            except Exception as exc:
                if attempt < _SINGLE_ATTEMPTS:
                    await asyncio.sleep(0.2)
                    continue
                poison = Poison(record, f"processing failed after {attempt} attempts: {exc!r}")
                await resources.dead_letters.send(poison)
                total.poison.append(poison)
            else:
                total.facts.extend(one.facts)
                total.changed.extend(one.changed)
                total.poison.extend(one.poison)
            break
    return total


def _observe(outcome: BatchOutcome, records: Sequence[Record], seconds: float) -> None:
    metrics.BATCH_SECONDS.observe(seconds)
    metrics.LAST_BATCH.set_to_current_time()
    now = datetime.now(UTC)
    by_type = Counter(p.fact.type for p in outcome.facts)
    for fact_type, count in by_type.items():
        metrics.FACTS.labels(type=metrics.fact_type_label(fact_type)).inc(count)
    if outcome.facts:
        # One observation per batch (its oldest fact): per-fact observations cost more CPU than
        # the insight they add.
        oldest = min(p.fact.received_at for p in outcome.facts)
        metrics.LATENCY_SECONDS.observe(max(0.0, (now - oldest).total_seconds()))
    for poison in outcome.poison:
        metrics.POISON.labels(reason=poison.reason.split(":")[0][:60]).inc()
        log.error(
            "poison record sent to %s: %s",
            topics.LIFECYCLE_DLQ,
            poison.reason,
            extra={
                "topic": poison.record.topic,
                "partition": poison.record.partition,
                "offset": poison.record.offset,
            },
        )
    log.debug("projected %d records in %.1f ms", len(records), seconds * 1000)
