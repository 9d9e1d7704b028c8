"""The consumer's side of the pipeline: commit a batch's own offsets, seek partitions back."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from projector.handlers import next_offsets
from sandbox_common.dead_letters import Record

log = logging.getLogger(__name__)


class ConsumerOffsets:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def commit(self, records: Sequence[Record]) -> None:
        """Exactly these records' offsets (not the consumer's position: the next batch has been
        fetched already). A partition taken away meanwhile is delivered again elsewhere, and
        re-applying a batch changes nothing: a failed commit is logged, not raised."""
        offsets = {TopicPartition(t, p): o for t, p, o in next_offsets(records)}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed, the batch will be delivered again: %r", exc)

    def rewind(self, records: Sequence[Record], skip: set[tuple[str, int]]) -> None:
        """Seek each partition of `records` (but those in `skip`) back to its first record."""
        earliest: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            earliest[tp] = min(earliest.get(tp, r.offset), r.offset)
        assigned = self._consumer.assignment()
        for tp, offset in earliest.items():
            if (tp.topic, tp.partition) not in skip and tp in assigned:
                self._consumer.seek(tp, offset)
